"""CURVE on the registry's remote endpoint: its cost per request, and authenticated
latency under a flood of unauthenticated connections.

Run: ``.venv/bin/python tests/bench/bench_curve.py [--requests N] [--flood-seconds S]
[--bogus N] [--junk-rate N]``

One real registry process serves its request socket on plain loopback TCP
(``registry.endpoint = tcp://127.0.0.1:P``, allowed on loopback only) and its remote
endpoint with CURVE on loopback too, one key authorized. A client times GETs of one
object, one at a time on one connection (REQ), and prints p50/p99/mean:

1. plain TCP vs CURVE, in alternating rounds (same process, same object): CURVE's cost
   per request, as a ratio to plain (target: at most +10 %);
2. CURVE again while another process floods the remote endpoint with ``--bogus`` CURVE
   clients of unknown keys (each handshake refused by ZAP; each client connects again
   every 0.5 s), 100 TCP connections that send nothing (held until the handshake timeout)
   and ``--junk-rate`` connections per second that send random bytes and close: the
   ratio to the same client without the flood, measured just before.

The machine's other load shows in the figures: compare ratios of one run, not runs.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ecsm_actors.registry import authorized  # noqa: E402
from ecsm_actors.registry.authorized import Role  # noqa: E402

SERVICE = {"apiVersion": "ecsm.sh/v1", "kind": "ECSMService", "metadata": {"name": "web"},
           "spec": {"deploymentStrategy": {"type": "Dynamic", "replicas": 1,
                                           "nodePool": ["node-1"]},
                    "template": {"image": "app@1.0#sylixos"}}}


def request(op: str, rid: int, **fields: Any) -> bytes:
    return msgpack.packb({"v": 1, "id": rid, "op": op, **fields}, use_bin_type=True)


GET = request("GET", 1, kind="ECSMService", namespace="default", name="web")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Registry:
    def __init__(self, tmp: Path) -> None:
        self.run_dir = tmp / "run"
        self.run_dir.mkdir(mode=0o700)
        self.client_keys = zmq.curve_keypair()
        authorized.authorize(authorized.authorized_keys_path(self.run_dir), "bench",
                             self.client_keys[0].decode(), Role.WRITE)
        self.plain = f"tcp://127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
        env.update(ECSM_ACTORS_RUN_DIR=str(self.run_dir), PYTHONPATH=str(ROOT),
                   ECSM_ACTORS_REGISTRY_ENDPOINT=self.plain,
                   ECSM_ACTORS_REGISTRY_REMOTE_ENDPOINT="tcp://127.0.0.1:*")
        self.log = tmp / "registry.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "ecsm_actors", "registry"],
                                         env=env, cwd=ROOT, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while not (m := re.search(r"remote endpoints (\S+) with CURVE", self.log.read_text())):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"registry did not start:\n{self.log.read_text()}")
            time.sleep(0.05)
        self.remote = m.group(1)
        self.server_key = authorized.server_pair(self.run_dir).public
        self.ctx = zmq.Context()

    def client(self, curve: bool) -> zmq.Socket[Any]:
        sock = self.ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.REQ_RELAXED, 1)
        sock.setsockopt(zmq.REQ_CORRELATE, 1)
        if curve:
            sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_key)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self.client_keys[0])
            sock.setsockopt(zmq.CURVE_SECRETKEY, self.client_keys[1])
        sock.connect(self.remote if curve else self.plain)
        sock.send(request("PING", 0))
        if not sock.poll(10_000):
            raise SystemExit(f"no answer on {'CURVE' if curve else 'plain'} endpoint")
        sock.recv()
        return sock

    def close(self) -> None:
        self.ctx.destroy(linger=0)
        self.proc.terminate()
        self.proc.wait(timeout=10)


LOST: list[int] = [0]


def timed_gets(sock: zmq.Socket[Any], n: int) -> list[float]:
    """Latencies of ``n`` GETs; a reply missing after 2 s is counted in LOST and the GET
    sent again (the REQ socket is relaxed)."""
    out = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        sock.send(GET)
        while not sock.poll(2000):
            LOST[0] += 1
            sock.send(GET)
        sock.recv()
        out.append(clock() - t0)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def figures(lat: list[float]) -> tuple[float, float, float]:
    """p50, p99, mean in microseconds."""
    s = sorted(lat)
    return (s[len(s) // 2] * 1e6, s[min(len(s) - 1, int(len(s) * 0.99))] * 1e6,
            statistics.fmean(s) * 1e6)


def show(label: str, lat: list[float], base: list[float] | None = None) -> None:
    p50, p99, mean = figures(lat)
    line = f"  {label:<30} p50 {p50:7.0f} us  p99 {p99:7.0f} us  mean {mean:7.0f} us"
    if base is not None:
        b50, b99, bmean = figures(base)
        line += f"   x{p50 / b50:.2f} p50, x{p99 / b99:.2f} p99, x{mean / bmean:.2f} mean"
    print(line, flush=True)


# -- the flood (runs in a process of its own) ------------------------------------------


def flood(endpoint: str, server_key: bytes, bogus: int, junk_rate: int, seconds: float) -> None:
    ctx = zmq.Context()
    socks = []
    for _ in range(bogus):
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 100)
        public, secret = zmq.curve_keypair()
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
        sock.connect(endpoint)
        sock.send(GET, zmq.NOBLOCK)
        socks.append(sock)
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    silent = []
    for _ in range(100):
        try:
            silent.append(socket.create_connection((host, int(port)), timeout=5))
        except OSError:
            pass
    made = cycles = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        # libzmq does not retry a handshake ZAP refused: connect again, as an attacker would.
        for sock in socks[cycles % 5::5]:
            sock.disconnect(endpoint)
            sock.connect(endpoint)
        cycles += 1
        for _ in range(max(1, junk_rate // 10)):
            try:
                with socket.create_connection((host, int(port)), timeout=1) as s:
                    s.sendall(os.urandom(256))
                made += 1
            except OSError:
                pass
        time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
    answered = sum(1 for s in socks if s.poll(0))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"  flood: {bogus} bogus CURVE clients ({answered} ever answered, each connecting "
          f"again every 0.5 s), {len(silent)} silent connections, {made} junk connections in "
          f"{seconds:.0f} s; the flooding process used "
          f"{(usage.ru_utime + usage.ru_stime) / seconds:.0%} of a core", flush=True)
    for s in silent:
        s.close()
    ctx.destroy(linger=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000, help="GETs per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--flood-seconds", type=float, default=0.0,
                        help="length of the flood (default: as long as the measurement)")
    parser.add_argument("--bogus", type=int, default=200)
    parser.add_argument("--no-flood", action="store_true", help="only plain vs CURVE")
    parser.add_argument("--junk-rate", type=int, default=200,
                        help="junk TCP connections per second")
    parser.add_argument("--flood", metavar="ENDPOINT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood:
        flood(args.flood, os.environ["BENCH_SERVER_KEY"].encode(), args.bogus,
              args.junk_rate, args.flood_seconds)
        return

    tmp = Path(tempfile.mkdtemp(prefix="ea-bench-", dir="/tmp"))
    registry = Registry(tmp)
    try:
        writer = registry.client(curve=False)
        writer.send(request("CREATE", 2, object=SERVICE))
        writer.recv()
        plain, curve = registry.client(curve=False), registry.client(curve=True)
        timed_gets(plain, 300)
        timed_gets(curve, 300)  # warm-up
        per_round = max(1, args.requests // args.rounds)
        plain_lat: list[float] = []
        curve_lat: list[float] = []
        for _ in range(args.rounds):
            plain_lat += timed_gets(plain, per_round)
            curve_lat += timed_gets(curve, per_round)
        print(f"GET of one object, one at a time, {len(plain_lat)} per endpoint "
              f"({args.rounds} alternating rounds):")
        show("plain tcp loopback", plain_lat)
        show("CURVE tcp loopback", curve_lat, plain_lat)
        print(f"  replies lost (none expected): {LOST[0]}", flush=True)

        if args.no_flood:
            return
        before = timed_gets(curve, args.requests // 2)
        seconds = args.flood_seconds or 3.0 + 3 * sum(before) * 2
        flooder = subprocess.Popen(
            [sys.executable, __file__, "--flood", registry.remote,
             "--bogus", str(args.bogus), "--junk-rate", str(args.junk_rate),
             "--flood-seconds", str(seconds)],
            env={**os.environ, "BENCH_SERVER_KEY": registry.server_key.decode()})
        try:
            time.sleep(2.0)  # every bogus client connected and refused at least once
            cpu0, t0 = cpu_seconds(registry.proc.pid), time.monotonic()
            flooded = timed_gets(curve, args.requests)
            busy = (cpu_seconds(registry.proc.pid) - cpu0) / (time.monotonic() - t0)
        finally:
            flooder.wait(timeout=seconds + 30)
        after = timed_gets(curve, args.requests // 2)
        log = registry.log.read_text()
        refusals = len(re.findall(r"is not authorized", log))
        more = sum(int(n) for n in re.findall(r"(\d+) more connection\(s\) refused", log))
        print(f"authenticated CURVE GET under the flood ({refusals} refused keys logged, "
              f"{more} more refusals counted; registry CPU {busy:.0%} of a core while "
              "flooded, serving the GETs included):")
        show("CURVE, no flood (before+after)", before + after)
        show("CURVE, flood", flooded, before + after)
        print(f"  replies lost (none expected): {LOST[0]}", flush=True)
    finally:
        registry.close()
        summary = re.search(r"remote: (\d+) handshakes admitted, (\d+) refused",
                            registry.log.read_text())
        if summary:
            print(f"  registry: {summary.group(1)} handshakes admitted, {summary.group(2)} "
                  "refused by ZAP in the whole run", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
