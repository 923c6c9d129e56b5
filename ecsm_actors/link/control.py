"""Start, find, query and stop link agents: the ``ecsm-cli`` side of :mod:`.agent`.

Runs in the ecsm-cli process. :func:`ensure` is on the path of the first registry
command of a remote context, so it never waits for the agent: it checks ``agent.json``
(the pid alive and running ``link-agent``, the same connections), else starts a new agent
detached — through ``/bin/sh`` with ``&``, so the agent is nobody's child to reap (no
zombie, no subprocess left running) and lives on after the command — and returns. The
command then connects to the agent's ``ipc://`` socket, which ZeroMQ retries until the
agent binds it, and its request waits there for the link.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from ecsm_actors.errors import ConfigError
from ecsm_actors.link.settings import AgentFiles, AgentSettings

#: The agent's log is rotated at start beyond this size (one ``.1`` kept).
LOG_MAX_BYTES = 1 << 20


@dataclass(frozen=True, kw_only=True)
class Running:
    pid: int
    settings: dict[str, Any]


def _is_agent(pid: int, files: AgentFiles) -> bool:
    """Whether ``pid`` is alive and is the link agent of ``files`` (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rpartition(")")[2].split()[0] == "Z":
        return False
    return b"link-agent" in cmdline and str(files.dir).encode() in cmdline


def running(files: AgentFiles) -> Running | None:
    """The agent serving ``files``, if one is alive."""
    try:
        doc = json.loads(files.info.read_text())
        pid = int(doc["pid"])
        settings = dict(doc["settings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Running(pid=pid, settings=settings) if _is_agent(pid, files) else None


def prepare_dir(files: AgentFiles) -> None:
    """Create the agent's directory and its parents we own (0700); ConfigError when the
    socket paths would not fit."""
    if not files.fits():
        raise ConfigError(f"the link directory {files.dir} is too long for ipc sockets "
                          f"(set XDG_RUNTIME_DIR to a short path)")
    for path in (files.dir.parent.parent, files.dir.parent, files.dir):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(files.dir, 0o700)


def start(settings: AgentSettings, files: AgentFiles) -> None:
    """Start an agent in the background and return at once (OSError if it cannot)."""
    prepare_dir(files)
    if files.log.exists() and files.log.stat().st_size > LOG_MAX_BYTES:
        os.replace(files.log, files.log.with_suffix(".log.1"))
    cmd = [sys.executable, "-m", "ecsm_actors", "link-agent", "--dir", str(files.dir),
           *settings.to_args()]
    fd = os.open(files.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        shell = subprocess.Popen(["/bin/sh", "-c", '"$@" &', "sh", *cmd],
                                 stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                 start_new_session=True, close_fds=True)
    finally:
        os.close(fd)
    shell.wait()


def ensure(settings: AgentSettings, files: AgentFiles) -> bool:
    """An agent serving ``settings`` is running or starting; True when this call started
    it. An agent with other connections (the context changed) is replaced."""
    agent = running(files)
    if agent is not None:
        if settings.same_connections(agent.settings):
            return False
        stop(files)
    start(settings, files)
    return True


def request(files: AgentFiles, op: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """Ask the agent's control socket; None when it does not answer in time."""
    if not files.control_sock.exists():
        return None
    ctx: zmq.Context[Any] = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(AgentFiles.ipc(files.control_sock))
        sock.send(json.dumps({"op": op}).encode())
        if not sock.poll(int(timeout * 1000)):
            return None
        doc = json.loads(sock.recv())
        return doc if isinstance(doc, dict) else None
    except (zmq.ZMQError, ValueError):
        return None
    finally:
        sock.close(linger=0)


def status(files: AgentFiles) -> tuple[Running | None, dict[str, Any] | None]:
    agent = running(files)
    return agent, (request(files, "status") if agent is not None else None)


def stop(files: AgentFiles, timeout: float = 3.0) -> int | None:
    """Stop the agent of ``files``: asked on its control socket, then SIGTERM, then
    SIGKILL; returns its pid once it is gone, None when none was running."""
    agent = running(files)
    if agent is None:
        return None
    request(files, "stop", timeout=min(1.0, timeout / 3))
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None and _is_agent(agent.pid, files):
            try:
                os.kill(agent.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout / 3
        while _is_agent(agent.pid, files):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        else:
            return agent.pid
    return agent.pid


def agent_dirs(root: Path) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return []
