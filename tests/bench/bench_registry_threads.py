"""The registry process's CPU a write, thread by thread: its loop, ZeroMQ's I/O thread, the
checkpoint thread, and the kernel's workers beside them.

Run: ``.venv/bin/python tests/bench/bench_registry_threads.py [--root TREE] [--clients N]
[--seconds S] [--rate W] [--env NAME=VALUE ...]``

A real registry (its own process, ipc://, durable), of the code in ``--root`` (default:
this tree; a clone of another commit to compare, run alternately), is driven by N client
processes of this tree (creates with a ``requestId``, back to back or paced at ``--rate``
writes/s each) for S seconds after a warm-up of 200 creates each. Its threads are named
(``prctl``, in the bench's wrapper only) and read from ``/proc/<pid>/task/*``: on-CPU time
(``schedstat``) and voluntary + involuntary context switches a write, each thread's
wake-ups. Beside them: the disk's write requests and KiB a write (``/proc/diskstats``,
the whole device: other processes' writes count too), the CPU of every ``kworker`` on the
machine a write (the log's asynchronous ``fdatasync`` runs in one: it is no part of the
registry's process CPU; other processes' I/O counts too), and the checkpoints' writebacks
of data.mdb (how many, its size, their wall time). ``--env`` sets the registry's
environment (``ECSM_ACTORS_REGISTRY_CHECKPOINT_INTERVAL=2``, ...). Print ``uptime``
beside figures: the cores are shared.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ecsm_actors.protocol import Op  # noqa: E402
from ecsm_actors.registry.client import RegistryClient  # noqa: E402
from tests.bench.bench_registry import PY  # noqa: E402

#: The registry of argv[1]'s tree, its Python threads named for /proc, its checkpoints'
#: writebacks counted (printed to stderr at exit).
REGISTRY = r"""
import atexit, ctypes, os, sys, threading, time
sys.path.insert(0, sys.argv[1])
libc = ctypes.CDLL(None)
bootstrap = threading.Thread._bootstrap_inner
def named(self):
    libc.prctl(15, self.name[:15].encode(), 0, 0, 0)  # PR_SET_NAME
    return bootstrap(self)
threading.Thread._bootstrap_inner = named
from ecsm_actors.registry import server
from ecsm_actors.store import checkpoint
write_back, seen = checkpoint.write_back, {"n": 0, "size": 0, "wall": 0.0}
def counted(fd, *args):
    t = time.monotonic()
    write_back(fd, *args)
    seen["n"] += 1; seen["size"] = os.fstat(fd).st_size; seen["wall"] += time.monotonic() - t
checkpoint.write_back = counted
atexit.register(lambda: sys.stderr.write(
    f"data.mdb writebacks: {seen['n']}, {seen['size'] >> 20} MiB at the last, "
    f"{seen['wall'] * 1e3 / max(seen['n'], 1):.0f} ms each\n"))
sys.exit(server.main([]))
"""

#: One client process: 200 creates, "go" on stdout, a line on stdin, then creates for the
#: given seconds (paced when a rate is given); prints how many it made.
CLIENT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from ecsm_actors.registry.client import RegistryClient
from tests.bench.bench_registry import value
endpoint, name, seconds, rate = sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
c = RegistryClient(endpoint, timeout=60)
for i in range(200):
    c.create(value(f"{name}-w{i}", namespace="threads"))
print("go", flush=True)
sys.stdin.readline()
n, t0 = 0, time.monotonic()
while time.monotonic() < t0 + seconds:
    if rate and (d := t0 + n / rate - time.monotonic()) > 0:
        time.sleep(d)
    c.create(value(f"{name}-{n}", namespace="threads"))
    n += 1
print(n)
"""


def tasks(pid: int) -> dict[int, tuple[str, int, int, int]]:
    """Each thread of ``pid``: its name, ns on CPU, voluntary and involuntary switches."""
    out = {}
    for d in glob.glob(f"/proc/{pid}/task/*"):
        try:
            name = Path(d, "comm").read_text().strip()
            ns = int(Path(d, "schedstat").read_text().split()[0])
            status = Path(d, "status").read_text()
        except OSError:  # the thread ended
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        out[int(d.rsplit("/", 1)[1])] = (name, ns, int(fields["voluntary_ctxt_switches"]),
                                         int(fields["nonvoluntary_ctxt_switches"]))
    return out


def disk(device: str) -> tuple[int, int]:
    """Write requests completed and sectors written on ``device``."""
    for line in Path("/proc/diskstats").read_text().splitlines():
        f = line.split()
        if f[2] == device:
            return int(f[7]), int(f[9])
    return 0, 0


def kworkers_ns() -> int:
    """ns on CPU of every kworker thread on the machine."""
    total = 0
    for d in glob.glob("/proc/[0-9]*/task/*"):
        try:
            if Path(d, "comm").read_text().startswith("kworker"):
                total += int(Path(d, "schedstat").read_text().split()[0])
        except OSError:
            continue
    return total


def device_of(path: Path) -> str:
    """The block device (its whole disk's name) holding ``path``, '' when unknown."""
    dev = os.stat(path).st_dev
    try:
        real = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}").resolve()
    except OSError:
        return ""
    return real.parent.name if (real / "partition").exists() else real.name


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=str(ROOT), help="the registry's code (a tree)")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="writes/s a client (0: back to back)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--zmq", action="store_true",
                        help="clients on the ZeroMQ endpoint (ipc://), not the local stream "
                        "(a tree from before the stream endpoint has only that one)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ea-bench-threads-", dir="/tmp"))
    tmp.chmod(0o700)
    run_dir = tmp / "run"
    run_dir.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env.update(ECSM_ACTORS_RUN_DIR=str(run_dir), ECSM_ACTORS_LOG_LEVEL="WARNING")
    env.update(kv.split("=", 1) for kv in args.env)
    errors = tmp / "registry.err"
    with errors.open("w") as err:
        registry = subprocess.Popen([PY, "-c", REGISTRY, args.root], env=env, cwd=args.root,
                                    stderr=err)
    endpoint = (f"ipc://{run_dir}/registry.sock" if args.zmq
                else f"unix://{run_dir}/registry.stream")
    device = device_of(tmp)
    clients: list[subprocess.Popen[str]] = []
    try:
        RegistryClient(endpoint, timeout=30).request(Op.PING)
        clients = [subprocess.Popen(
            [PY, "-c", CLIENT, str(ROOT), endpoint, f"c{i}", str(args.seconds), str(args.rate)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, text=True)
            for i in range(args.clients)]
        for c in clients:
            assert c.stdout is not None and c.stdout.readline().strip() == "go"
        t0, k0, d0, w0 = tasks(registry.pid), kworkers_ns(), disk(device), time.monotonic()
        for c in clients:
            assert c.stdin is not None
            c.stdin.write("\n")
            c.stdin.flush()
        writes = sum(int(c.communicate(timeout=args.seconds + 60)[0]) for c in clients)
        t1, k1, d1, w1 = tasks(registry.pid), kworkers_ns(), disk(device), time.monotonic()
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
        registry.terminate()
        registry.wait(timeout=30)
        err_lines = errors.read_text().splitlines()
        shutil.rmtree(tmp, ignore_errors=True)
    n = max(writes, 1)
    rows = []
    for tid, (name, ns, vol, inv) in t1.items():
        _, ns0, vol0, inv0 = t0.get(tid, (name, 0, 0, 0))
        rows.append((ns - ns0, name, vol - vol0, inv - inv0))
    rows.sort(reverse=True)
    print(f"{args.root}: {args.clients} client(s), {writes / (w1 - w0):,.0f} creates/s, load "
          f"{os.getloadavg()[0]:.2f}; registry process {sum(r[0] for r in rows) / n / 1e3:.0f} "
          "us a write; by thread, us (switches voluntary + involuntary) a write:")
    for ns, name, vol, inv in rows:
        if ns > 0:
            print(f"  {name:16} {ns / n / 1e3:7.1f}  ({vol / n:.2f} + {inv / n:.2f})")
    print(f"  disk {device or '?'}: {(d1[0] - d0[0]) / n:.2f} write requests, "
          f"{(d1[1] - d0[1]) * 512 / n / 1024:.1f} KiB a write; every kworker "
          f"{(k1 - k0) / n / 1e3:.0f} us a write (the machine's)")
    for line in err_lines:  # the writebacks' line, and anything the registry said
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
