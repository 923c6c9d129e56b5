"""Start a real registry process for a test and wait until it answers PING; or serve one
in the test's process (:class:`InProcessRegistry`); read its liveness reports."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from ecsm_actors import protocol
from ecsm_actors.cli.ecsm_cli import main as cli_main
from ecsm_actors.config import Config, load_config
from ecsm_actors.protocol import Op
from ecsm_actors.registry.client import RegistryClient
from ecsm_actors.registry.server import RegistryServer
from tests.helpers import Processes, wait_until

ROOT = Path(__file__).resolve().parents[1]


def registry_config(processes: Processes, env: dict[str, str] | None = None) -> Config:
    """The config the registry sees for this run dir (and ``env`` overrides)."""
    return load_config(None, environ=processes.env(env))


def start_registry(processes: Processes, env: dict[str, str] | None = None,
                   timeout: float = 15.0) -> tuple[subprocess.Popen[Any], RegistryClient]:
    """Spawn ``python -m ecsm_actors registry`` in the run dir; return it and a client
    once it answers PING (the client uses a short timeout so a test never hangs; it talks
    to the local stream endpoint when the registry serves one, as local processes do)."""
    proc = processes.spawn("registry", env=env, log_name="registry")
    cfg = registry_config(processes, env)
    client = RegistryClient(cfg.registry_local_endpoint, timeout=1.0)

    def ready() -> bool:
        assert proc.poll() is None, f"registry exited with {proc.returncode}"
        try:
            client.ping()
        except Exception:  # noqa: BLE001 - not up yet
            return False
        return True

    wait_until(ready, timeout=timeout, what="the registry to answer PING")
    return proc, client


StartRegistry = Callable[..., tuple[subprocess.Popen[Any], RegistryClient]]


def registry_starter(processes: Processes) -> Iterator[StartRegistry]:
    """Body of a ``registry`` fixture: ``registry(env=None)`` starts a registry (see
    :func:`start_registry`); its clients are closed at teardown, the process is killed by
    the ``processes`` fixture. Use as::

        @pytest.fixture
        def registry(processes):
            yield from registry_starter(processes)
    """
    clients: list[RegistryClient] = []

    def start(env: dict[str, str] | None = None) -> tuple[subprocess.Popen[Any], RegistryClient]:
        proc, client = start_registry(processes, env)
        clients.append(client)
        return proc, client

    yield start
    for client in clients:
        client.close()


RunCli = Callable[..., tuple[int, str, str]]


def without_ecsm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every ``ECSM_ACTORS_*`` variable for the test."""
    for var in [v for v in os.environ if v.startswith("ECSM_ACTORS_")]:
        monkeypatch.delenv(var)


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            args: Sequence[str], stdin: str | None = None) -> tuple[int, str, str]:
    """``ecsm-cli args`` in-process through its real entry point (``stdin`` as its
    standard input when given): ``(code, out, err)``."""
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = cli_main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def cli_runner(processes: Processes, registry: StartRegistry,
               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    """Body of a ``cli`` fixture: starts a registry in the run dir (no other
    ``ECSM_ACTORS_*`` variable set) and returns ``run(*args, stdin=None)``, which runs
    ``ecsm-cli`` in-process through its real entry point and returns ``(code, out, err)``."""
    without_ecsm_env(monkeypatch)
    monkeypatch.setenv("ECSM_ACTORS_RUN_DIR", str(processes.run_dir))
    registry()

    def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        return run_cli(monkeypatch, capsys, args, stdin)

    return run


class InProcessRegistry:
    """A :class:`RegistryServer` in the test's process and one DEALER peer, both on
    ``inproc://``: a message sent there is queued when ``send`` returns, so a test that
    calls :meth:`RegistryServer.serve_batch` itself knows exactly what one turn holds."""

    def __init__(self, run_dir: Path, env: dict[str, str] | None = None) -> None:
        cfg = load_config(None, environ={"ECSM_ACTORS_RUN_DIR": str(run_dir), **(env or {})})
        # inproc:// is no configurable endpoint (it cannot leave the process): set here.
        cfg = replace(cfg, registry=replace(cfg.registry, endpoint="inproc://registry",
                                            events_endpoint="inproc://events"))
        self.server = RegistryServer(cfg)
        self.peer = self.server.context.socket(zmq.DEALER)
        self.peer.setsockopt(zmq.LINGER, 0)
        self.peer.connect("inproc://registry")
        self._subscribers: list[zmq.Socket[Any]] = []

    def subscriber(self) -> zmq.Socket[Any]:
        """A SUB socket on every event (closed by :meth:`close`)."""
        sub = self.server.context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect("inproc://events")
        self._subscribers.append(sub)
        # The registry sends on its PUB socket only once its loop took a subscription
        # there; a test that runs the turns itself lets it take this one first.
        server = self.server

        def taken() -> bool:
            server._take_pub_subscriptions()
            return b"" in server._pub_topics

        wait_until(taken, timeout=5, what="the subscription taken by the registry")
        return sub

    def send(self, *frames: bytes) -> None:
        self.peer.send_multipart([b"", *frames])

    def request(self, op: Op, request_id: int, **fields: Any) -> None:
        self.send(protocol.encode_request(op, request_id, **fields))

    def replies(self, count: int) -> dict[Any, dict[str, Any]]:
        """The next ``count`` replies by request id (each must be there already)."""
        out = {}
        for _ in range(count):
            assert self.peer.poll(5000), f"only {len(out)} of {count} replies"
            reply = msgpack.unpackb(self.peer.recv_multipart()[-1])
            out[reply["id"]] = reply
        assert not self.peer.poll(0), "more replies than requests"
        return out

    def close(self) -> None:
        for sub in self._subscribers:
            sub.close()
        self.peer.close()
        self.server.close()


def liveness_socket(processes: Processes) -> Iterator[zmq.Socket[Any]]:
    """Body of a ``liveness`` fixture: a PULL socket where the supervisor would be, to
    read the registry's liveness reports (see :func:`latest_stats`)."""
    sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(registry_config(processes).heartbeat_endpoint)
    yield sock
    sock.close()


def latest_stats(liveness: zmq.Socket[Any]) -> dict[str, Any]:
    """The stats of the registry's latest liveness report (empty if none came)."""
    stats: dict[str, Any] = {}
    while liveness.poll(0):
        stats = protocol.decode_liveness(liveness.recv()).stats
    return stats


def racing_editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: str) -> Path:
    """Make ``$EDITOR`` an editor that, on its first opening of ``esvc web``, has another
    client change the object (spec.priority = 9) and then applies the sed script ``edit``
    to the file; on a second opening it saves what it was shown (returned path: that
    copy, with the reopened file's error comments) and removes an ``x`` line prefix."""
    seen = tmp_path / "second-opening.yaml"
    concurrent = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                  "from ecsm_actors.config import load_config; "
                  "from ecsm_actors.registry.client import RegistryClient; "
                  "c = RegistryClient.from_config(load_config()); "
                  "o = c.get('ECSMService', 'default', 'web'); o['spec']['priority'] = 9; "
                  "c.update(o); c.close()")
    editor = tmp_path / "editor.sh"
    editor.write_text(
        "#!/bin/sh\n"
        f"if [ -e {tmp_path}/once ]; then cp \"$1\" {seen}; sed -i 's/^x//' \"$1\"\n"
        f"else touch {tmp_path}/once; {sys.executable} -c \"{concurrent}\"\n"
        f"  sed -i {edit} \"$1\"; fi\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    return seen
