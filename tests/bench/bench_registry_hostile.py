"""Registry memory against hostile peers: the RSS of a real registry process.

Run: ``.venv/bin/python tests/bench/bench_registry_hostile.py [--scenario NAME] [--root DIR]
[--env KEY=VALUE]...``

Each scenario starts a fresh registry (``--root``: the source tree it runs from, to
compare with another checkout) and prints its RSS once it answers PING, its peak RSS
(``VmHWM``) during the scenario and its RSS at the end:

* ``big-writes`` — 4 clients pipeline 10 CREATEs each of just under ``max_frame_bytes``
  (a map of 160,000 unknown fields: decoded, about 30 MB per write), all sent at once;
* ``unread-replies`` — with 1,000 objects stored (a LIST reply of about 1.1 MiB), one
  client pipelines 400 LISTs and never reads a reply (its receive queue is 1 message);
* ``unread-events`` — a subscriber that never reads (receive queue of 1 message) while
  a client makes 3,000 updates of a 32 KiB object (an event of about 33 KiB each).

Peers speak the wire format directly (msgpack over ZeroMQ), not through the project's
client, so the same script measures any checkout.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import zmq

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def service(name: str, **extra_meta: Any) -> dict[str, Any]:
    return {"apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
            "metadata": {"name": name, **extra_meta},
            "spec": {"deploymentStrategy": {"type": "Dynamic", "replicas": 1,
                                            "nodePool": ["node-1"]},
                     "template": {"image": "app@1.0#sylixos"}}}


def request(op: str, rid: int, **fields: Any) -> bytes:
    return msgpack.packb({"v": 1, "id": rid, "op": op, **fields}, use_bin_type=True)


def memory(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) of ``pid`` in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


class Registry:
    def __init__(self, root: Path, tmp: Path, extra_env: dict[str, str]) -> None:
        self.run_dir = tmp / "run"
        self.run_dir.mkdir(mode=0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
        env.update(ECSM_ACTORS_RUN_DIR=str(self.run_dir), ECSM_ACTORS_LOG_LEVEL="ERROR",
                   PYTHONPATH=str(root), **extra_env)
        self.proc = subprocess.Popen([sys.executable, "-m", "ecsm_actors", "registry"],
                                     env=env, cwd=root)
        self.endpoint = f"ipc://{self.run_dir}/registry.sock"
        self.events = f"ipc://{self.run_dir}/events.sock"
        self.ctx = zmq.Context()
        self.req = self.socket(zmq.REQ)
        self.ask("PING", timeout=20)

    def socket(self, kind: int, **options: int) -> zmq.Socket[Any]:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        for name, value in options.items():
            sock.setsockopt(getattr(zmq, name), value)
        sock.connect(self.events if kind == zmq.SUB else self.endpoint)
        return sock

    def ask(self, op: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        self.req.send(request(op, 1, **fields))
        if not self.req.poll(int(timeout * 1000)):
            raise SystemExit(f"the registry did not answer {op} within {timeout}s")
        return msgpack.unpackb(self.req.recv())

    def memory(self) -> tuple[float, float]:
        return memory(self.proc.pid)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.ctx.destroy(linger=0)


def sample_peak(reg: Registry, stop: threading.Event, out: list[float]) -> None:
    while not stop.wait(0.02):
        out.append(reg.memory()[0])


def big_writes(reg: Registry) -> str:
    frame_limit = 4 * MiB
    fields = (frame_limit - 4096) // 25  # "fNNNNNN" + 16-character value: 25 bytes each
    clients = [reg.socket(zmq.DEALER) for _ in range(4)]
    junk = {f"f{j:06d}": "v" * 16 for j in range(fields)}
    frames = []
    for k in range(4):
        for i in range(10):
            obj = service(f"big-{k}-{i}")
            obj["spec"]["junk"] = junk
            frames.append((k, request("CREATE", k * 100 + i, object=obj)))
    size = len(frames[0][1])
    for k, frame in frames:
        clients[k].send_multipart([b"", frame])
    codes: Counter[str] = Counter()
    deadline = time.monotonic() + 120
    for sock in clients:
        for _ in range(10):
            if not sock.poll(int(max(0, deadline - time.monotonic()) * 1000)):
                raise SystemExit("not every write was answered")
            reply = msgpack.unpackb(sock.recv_multipart()[-1])
            codes["ok" if reply["ok"] else reply["error"]["code"]] += 1
        sock.close()
    return f"40 writes of {size / MiB:.2f} MiB answered: {dict(codes)}"


def unread_replies(reg: Registry) -> str:
    blob = "x" * 1000
    for i in range(1000):
        reg.ask("CREATE", object=service(f"s{i}", annotations={"blob": blob}))
    listed = reg.ask("LIST", kind="ECSMService")
    size = len(msgpack.packb(listed))
    greedy = reg.socket(zmq.DEALER, RCVHWM=1, RCVBUF=4096)
    for i in range(400):
        greedy.send_multipart([b"", request("LIST", i, kind="ECSMService")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # let the registry answer what it will
        reg.ask("PING")
        time.sleep(0.2)
    greedy.close()
    return f"400 LISTs of {size / MiB:.2f} MiB each sent, none read"


def unread_events(reg: Registry) -> str:
    deaf = reg.socket(zmq.SUB, RCVHWM=1, RCVBUF=4096)
    deaf.setsockopt(zmq.SUBSCRIBE, b"")
    time.sleep(0.5)  # the subscription reaches the registry (slow joiner)
    obj = reg.ask("CREATE", object=service("hot", annotations={"blob": "x" * (32 << 10)}))
    current = obj["result"]
    for i in range(3000):
        current["spec"]["deploymentStrategy"]["replicas"] = 1 + i % 50
        current = reg.ask("UPDATE", object=current)["result"]
    deaf.close()
    return "3,000 events of about 33 KiB published, none read"


SCENARIOS: dict[str, Callable[[Registry], str]] = {
    "big-writes": big_writes, "unread-replies": unread_replies, "unread-events": unread_events,
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--root", type=Path, default=ROOT, help="source tree to run")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment of the registry, e.g. "
                             "ECSM_ACTORS_REGISTRY_PEER_QUEUE_BYTES=16Mi")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    print(f"registry RSS against hostile peers ({args.root})")
    for name in names:
        tmp = Path(tempfile.mkdtemp(prefix="ea-hb-", dir="/tmp"))
        reg = Registry(args.root, tmp, extra_env)
        try:
            idle, _ = reg.memory()
            stop, samples = threading.Event(), [idle]
            sampler = threading.Thread(target=sample_peak, args=(reg, stop, samples))
            sampler.start()
            start = time.monotonic()
            what = SCENARIOS[name](reg)
            took = time.monotonic() - start
            stop.set()
            sampler.join()
            end, peak = reg.memory()
            print(f"  {name:<15} idle {idle:6.1f} MiB  peak {max(peak, *samples):7.1f} MiB  "
                  f"end {end:7.1f} MiB  ({took:.1f} s; {what})", flush=True)
        finally:
            reg.close()
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
