"""What one link agent serves, and where its files are.

Shared by ``ecsm-cli`` (which starts agents and finds them) and the agent process. An
agent's directory is ``$XDG_RUNTIME_DIR/ecsm-cli/link/<name>/``, else
``~/.ecsm-cli.d/link/<name>/`` (0700), holding:

* ``registry.sock`` / ``events.sock`` — the local endpoints the CLI talks to (0600);
* ``control.sock`` — status and stop (0600);
* ``agent.json`` — the pid and the settings of the running agent: a command whose
  settings differ (the context was changed) replaces it;
* ``agent.lock`` — held (flock) by the running agent: never two agents in one directory;
* ``agent.log`` — its log (one ``.1`` kept).

Settings travel on the agent's command line: endpoints, the server's public key and the
*path* of the client key file — never a secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Longest ipc:// path ZeroMQ can bind (sun_path), with a margin.
MAX_IPC_PATH = 100


@dataclass(frozen=True, kw_only=True)
class AgentSettings:
    """One agent's connections. ``events`` empty: requests only."""

    name: str
    endpoint: str
    events: str
    server_key: str
    client_key: str
    idle_timeout: float
    heartbeat_interval: float
    heartbeat_timeout: float

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    def to_args(self) -> list[str]:
        args: list[str] = []
        for key, value in asdict(self).items():
            # one token per option: a value may start with "-" (a Z85 key can)
            args.append(f"--{key.replace('_', '-')}={value}")
        return args

    def same_connections(self, doc: Mapping[str, Any]) -> bool:
        """Whether an agent running with ``doc`` serves what these settings ask."""
        mine = self.to_doc()
        return all(doc.get(k) == mine[k] for k in ("endpoint", "events", "server_key",
                                                   "client_key"))


@dataclass(frozen=True)
class AgentFiles:
    dir: Path

    @property
    def registry_sock(self) -> Path:
        return self.dir / "registry.sock"

    @property
    def events_sock(self) -> Path:
        return self.dir / "events.sock"

    @property
    def control_sock(self) -> Path:
        return self.dir / "control.sock"

    @property
    def info(self) -> Path:
        return self.dir / "agent.json"

    @property
    def lock(self) -> Path:
        return self.dir / "agent.lock"

    @property
    def log(self) -> Path:
        return self.dir / "agent.log"

    @staticmethod
    def ipc(path: Path) -> str:
        return f"ipc://{path}"

    def fits(self) -> bool:
        """Whether the socket paths fit ZeroMQ's ipc limit."""
        return len(str(self.control_sock)) <= MAX_IPC_PATH


def link_root(environ: Mapping[str, str], home: Path) -> Path:
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "ecsm-cli" / "link"
    return home / ".ecsm-cli.d" / "link"


def agent_files(name: str, environ: Mapping[str, str], home: Path) -> AgentFiles:
    return AgentFiles(link_root(environ, home) / name)
