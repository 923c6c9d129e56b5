"""Where one registry round trip goes: GET, UPDATE, CREATE, client and registry, against an echo.

Run: ``.venv/bin/python tests/bench/bench_request_path.py [--n N] [--rounds R] [--profile]``

A real registry (durable LMDB) and, beside it, an echo process that answers each request
with the bytes the registry answers it (the floor: the transport, the two processes, no
work): on the registry's local stream endpoint (unix://, length-prefixed frames on an
AF_UNIX stream socket), or with ``--zmq`` on its ZeroMQ endpoint (ipc://, the echo a
ROUTER). Measured in interleaved rounds, p50 of N calls each:

* ``echo``: a bare socket to the echo process, the request's bytes pre-encoded;
* ``raw``: the same bare socket to the registry (the registry's own cost = raw - echo);
* ``client``: :class:`RegistryClient` (the client's cost = client - raw).

UPDATE writes one object back with the version just read (raw: pre-encoded frames, one
per version); CREATE writes new objects (raw: pre-encoded frames). Every write carries a
``requestId``, as every write of ``RegistryClient`` does; the same updates without one
are timed beside them, and updates that write no object (one that changes nothing, one
refused at a past version), with and without a ``requestId`` (with one, the request
window records each). The LMDB commit of an update
alone is printed beside it, with and without ``metasync`` (LMDB then syncs the data
pages only, the meta page riding on the next commit's sync: not durable against power
loss, measured for reference only), and the decode of a LIST of 10,000 with msgpack and
with msgspec when installed.

Wall times on a shared machine are noisy; the CPU each call takes in this thread and in
the server process (the registry, or the echo) is printed too.

``--profile`` runs 20,000 GETs and 2,000 UPDATEs through RegistryClient under cProfile
and prints the client's top functions (the registry's side: run the registry under
``python -m cProfile -o FILE -m ecsm_actors registry``).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import lmdb  # noqa: E402
import msgpack  # noqa: E402
import psutil  # noqa: E402
import zmq  # noqa: E402

from ecsm_actors import protocol  # noqa: E402
from ecsm_actors.protocol import Op  # noqa: E402
from ecsm_actors.registry.client import RegistryClient  # noqa: E402
from tests.bench.bench_registry import PY, report, stored_write, value  # noqa: E402

ECHO = """
import sys, zmq
ctx = zmq.Context(); s = ctx.socket(zmq.ROUTER); s.bind(sys.argv[1])
replies = {}
print("up", flush=True)
while True:
    frames = s.recv_multipart()
    body = frames[-1]
    if body.startswith(b"teach:"):  # teach:<len of request><request><reply>
        n = int(body[6:16]); replies[body[16:16 + n]] = body[16 + n:]
        s.send_multipart(frames[:-1] + [b"ok"]); continue
    if body == b"quit":
        s.send_multipart(frames[:-1] + [b""]); break
    s.send_multipart(frames[:-1] + [replies.get(body, body)])
"""


#: The echo on a stream endpoint: length-prefixed frames, its greeting first (as the
#: registry's), one connection at a time.
ECHO_STREAM = """
import socket, struct, sys
H = struct.Struct(">I")
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1]); listener.listen(8)
replies = {}
print("up", flush=True)
def serve(c):
    c.sendall(H.pack(0))
    buf = b""
    while True:
        while len(buf) < 4 or len(buf) < 4 + H.unpack_from(buf)[0]:
            data = c.recv(1 << 16)
            if not data:
                return True
            buf += data
        n = H.unpack_from(buf)[0]
        body, buf = buf[4:4 + n], buf[4 + n:]
        if body.startswith(b"teach:"):
            k = int(body[6:16]); replies[body[16:16 + k]] = body[16 + k:]
            c.sendall(H.pack(2) + b"ok"); continue
        if body == b"quit":
            return False
        reply = replies.get(body, body)
        c.sendall(H.pack(len(reply)) + reply)
while True:
    c, _ = listener.accept()
    with c:
        if not serve(c):
            break
"""


#: CPU seconds per call of the last :func:`p50_of`: (this thread, the server process).
cpu: dict[str, float] = {}


def p50_of(calls: list[Any], server: psutil.Process | None = None) -> float:
    """Median seconds of the calls (each a zero-argument callable), timed one by one;
    the CPU they took here and in ``server`` per call is left in :data:`cpu` (CPU time
    is what a loaded machine blurs least)."""
    times = []
    before = server.cpu_times() if server is not None else None
    c0 = time.thread_time_ns()
    for call in calls:
        t = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - t)
    cpu["client"] = (time.thread_time_ns() - c0) / 1e9 / len(calls)
    if server is not None and before is not None:
        after = server.cpu_times()
        cpu["server"] = ((after.user + after.system) - (before.user + before.system)) / len(calls)
    return statistics.median(times) / 1e9


class Bare:
    """A bare REQ socket: send bytes, receive bytes."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str) -> None:
        self.sock = ctx.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def __call__(self, frame: bytes) -> bytes:
        self.sock.send(frame)
        return self.sock.recv()


class BareStream:
    """A bare stream socket: send a frame (its length first), receive one."""

    def __init__(self, endpoint: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(endpoint[len("unix://"):])
        assert self.sock.recv(4) == protocol.frame_head(0)  # the greeting

    def __call__(self, frame: bytes) -> bytes:
        sock = self.sock
        sock.sendall(protocol.frame_head(len(frame)) + frame)
        data = sock.recv(1 << 16)
        while len(data) < 4 or len(data) < 4 + protocol.frame_size(data)[0]:
            data += sock.recv(1 << 16)
        return data[4:]


def commit_p50(path: Path, stored: bytes, event: bytes, n: int, metasync: bool) -> float:
    env = lmdb.open(str(path), map_size=1 << 28, max_dbs=3, metasync=metasync)
    objects, events = env.open_db(b"objects"), env.open_db(b"events")
    times = []
    for i in range(n):
        t = time.perf_counter_ns()
        with env.begin(write=True) as txn:
            txn.put(b"ECSMService/hot/hot", stored, db=objects)
            txn.put(i.to_bytes(8, "big"), event, db=events, append=True)
        times.append(time.perf_counter_ns() - t)
    env.close()
    return statistics.median(times) / 1e9


def list_decode(data: bytes, count: int) -> None:
    """Decode the same 10,000 objects (a LIST reply's list) with each codec, GC paused."""
    frame = msgpack.Packer().pack_array_header(count) + data
    codecs: dict[str, Any] = {"msgpack": lambda b: msgpack.unpackb(b, raw=False)}
    try:
        import msgspec
        decoder = msgspec.msgpack.Decoder()
        codecs["msgspec"] = decoder.decode
    except ImportError:
        pass
    best: dict[str, float] = {}
    for _ in range(5):
        for name, decode in codecs.items():
            gc.disable()
            t = time.perf_counter()
            items = decode(frame)
            best[name] = min(best.get(name, 1e9), time.perf_counter() - t)
            gc.enable()
            assert len(items) == count
            del items
    for name, seconds in best.items():
        report(f"decode a LIST of {count:,} with {name}, GC paused (best of 5)",
               f"{seconds * 1e3:.1f} ms", f"{seconds / best['msgpack']:.2f}x msgpack")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--zmq", action="store_true",
                        help="the registry's ZeroMQ endpoint (ipc://) and a ZeroMQ echo, "
                        "not the local stream endpoint and a stream echo")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile 20,000 GETs and UPDATEs through the client")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ea-bench-path-", dir="/tmp"))
    tmp.chmod(0o700)
    run_dir = tmp / "run"
    run_dir.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env.update(ECSM_ACTORS_RUN_DIR=str(run_dir), ECSM_ACTORS_LOG_LEVEL="WARNING")
    print(f"one round trip, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}; "
          f"{args.rounds} rounds of {args.n} calls, p50")
    registry = subprocess.Popen([PY, "-m", "ecsm_actors", "registry"], env=env, cwd=ROOT)
    if args.zmq:
        echo_endpoint = f"ipc://{tmp}/echo.sock"
        echo = subprocess.Popen([PY, "-c", ECHO, echo_endpoint], stdout=subprocess.PIPE)
    else:
        echo_endpoint = f"unix://{tmp}/echo.stream"
        echo = subprocess.Popen([PY, "-c", ECHO_STREAM, echo_endpoint[len("unix://"):]],
                                stdout=subprocess.PIPE)
    ctx = zmq.Context()
    try:
        assert echo.stdout is not None and echo.stdout.readline().strip() == b"up"
        endpoint = (f"ipc://{run_dir}/registry.sock" if args.zmq
                    else f"unix://{run_dir}/registry.stream")
        print(f"on {endpoint.partition(':')[0]}://")
        client = RegistryClient(endpoint, timeout=60)
        client.ping()
        obj = client.create(value("hot", namespace="hot"))
        raw: Any
        to_echo: Any
        if args.zmq:
            raw, to_echo = Bare(ctx, endpoint), Bare(ctx, echo_endpoint)
        else:
            raw, to_echo = BareStream(endpoint), BareStream(echo_endpoint)

        def teach(request: bytes, reply: bytes) -> None:
            to_echo(b"teach:" + b"%010d" % len(request) + request + reply)

        get_frame = protocol.encode_request(Op.GET, 1, kind="ECSMService", namespace="hot",
                                            name="hot")
        teach(get_frame, raw(get_frame))

        def update_frames(obj: dict[str, Any], n: int, with_id: bool = True) -> list[bytes]:
            """Updates of ``obj`` one after the other: the first at its version, each next
            at the store's version after the one before (creates moved it past ``obj``'s)."""
            frames, store_rv = [], client.ping()["resourceVersion"]
            base = obj["spec"]["deploymentStrategy"]["replicas"] - 1  # each frame changes it
            for i in range(n):
                rv = obj["metadata"]["resourceVersion"] if i == 0 else store_rv + i
                o = {**obj, "metadata": {**obj["metadata"], "resourceVersion": rv},
                     "spec": {**obj["spec"], "deploymentStrategy": {
                         **obj["spec"]["deploymentStrategy"], "replicas": 2 + (base + i) % 3}}}
                rid = {"requestId": f"bench.{store_rv}.{i}"} if with_id else {}
                frames.append(protocol.encode_request(Op.UPDATE, 1, object=o, **rid))
            return frames

        figures: dict[str, list[float]] = {}

        def note(name: str, seconds: float) -> None:
            figures.setdefault(name, []).append(seconds)
            figures.setdefault(name + " cpu", []).append(cpu["client"])
            figures.setdefault(name + " server cpu", []).append(cpu.get("server", 0.0))

        reg_proc, echo_proc = psutil.Process(registry.pid), psutil.Process(echo.pid)

        for rnd_ in range(args.rounds):
            note("GET echo", p50_of([lambda: to_echo(get_frame)] * args.n, echo_proc))
            note("GET raw", p50_of([lambda: raw(get_frame)] * args.n, reg_proc))
            note("GET client", p50_of([lambda: client.get("ECSMService", "hot", "hot")]
                                      * args.n, reg_proc))
            obj = client.get("ECSMService", "hot", "hot")
            frames = update_frames(obj, args.n)
            answer = raw(frames[0])
            assert msgpack.unpackb(answer)["ok"], msgpack.unpackb(answer)
            teach(frames[0], answer)
            first = frames[0]
            note("UPDATE echo", p50_of([lambda f=first: to_echo(f)] * args.n, echo_proc))
            answer = msgpack.unpackb(raw(frames[1]))
            assert answer["ok"], answer
            # the same updates with and without a requestId, which first alternating
            for with_id in (True, False) if rnd_ % 2 == 0 else (False, True):
                frames = update_frames(client.get("ECSMService", "hot", "hot"), args.n + 1,
                                       with_id)
                note("UPDATE raw" if with_id else "UPDATE raw, no requestId",
                     p50_of([lambda f=f: raw(f) for f in frames[:-1]], reg_proc))
                answer = msgpack.unpackb(raw(frames[-1]))
                assert answer["ok"], answer
            # Updates that write no object: one that changes nothing, one refused (at a
            # past version); a requestId makes each a record of the request window.
            current = client.get("ECSMService", "hot", "hot")
            stale = {**current, "metadata": {**current["metadata"], "resourceVersion":
                                             current["metadata"]["resourceVersion"] - 1}}
            for name, o in (("unchanged", current), ("refused", stale)):
                for with_id in (True, False):
                    label = f"UPDATE {name}, {'with' if with_id else 'no'} requestId"
                    idle = [protocol.encode_request(
                        Op.UPDATE, 1, object=o,
                        **({"requestId": f"bench.{name}.{rnd_}.{i}"} if with_id else {}))
                        for i in range(args.n)]
                    note(label, p50_of([lambda f=f: raw(f) for f in idle], reg_proc))
            holder = [client.get("ECSMService", "hot", "hot")]

            def update(holder: list[dict[str, Any]] = holder) -> None:
                o = holder[0]
                o["spec"]["deploymentStrategy"]["replicas"] = 2 + (
                    o["metadata"]["resourceVersion"] + 1) % 3
                holder[0] = client.update(o)
            note("UPDATE client", p50_of([update] * args.n, reg_proc))
            rnd = len(figures["UPDATE client"])
            creates = [protocol.encode_request(Op.CREATE, 1, requestId=f"bench.c{rnd}.{i}",
                                               object=value(f"raw-{rnd}-{i}", namespace="hot"))
                       for i in range(args.n + 1)]
            answer = raw(creates[0])
            assert msgpack.unpackb(answer)["ok"], msgpack.unpackb(answer)
            teach(creates[0], answer)
            first = creates[0]
            note("CREATE echo", p50_of([lambda f=first: to_echo(f)] * args.n, echo_proc))
            note("CREATE raw", p50_of([lambda f=f: raw(f) for f in creates[1:]], reg_proc))
            objs = [value(f"client-{rnd}-{i}", namespace="hot") for i in range(args.n)]
            note("CREATE client", p50_of([lambda o=o: client.create(o) for o in objs], reg_proc))

        def us(name: str) -> str:
            return f"{statistics.median(figures[name]) * 1e6:.0f}"

        print("CPU per call, us (client thread / server process):")
        for op in ("GET", "UPDATE", "CREATE"):
            report(f"  {op} echo", f"{us(f'{op} echo cpu')} / {us(f'{op} echo server cpu')}")
            report(f"  {op} bare socket to the registry",
                   f"{us(f'{op} raw cpu')} / {us(f'{op} raw server cpu')}")
            report(f"  {op} RegistryClient",
                   f"{us(f'{op} client cpu')} / {us(f'{op} client server cpu')}")
        for name in ("unchanged", "refused"):
            for how in ("with", "no"):
                label = f"UPDATE {name}, {how} requestId"
                report(f"  {label}", f"{us(label + ' cpu')} / {us(label + ' server cpu')}")
        print("wall p50:")
        for op in ("GET", "UPDATE", "CREATE"):
            echo_s = statistics.median(figures[f"{op} echo"])
            raw_s = statistics.median(figures[f"{op} raw"])
            client_s = statistics.median(figures[f"{op} client"])
            report(f"{op} echo (floor)", f"{echo_s * 1e6:.0f} us")
            report(f"{op} bare socket to the registry", f"{raw_s * 1e6:.0f} us",
                   f"registry's own +{(raw_s - echo_s) * 1e6:.0f} us")
            if op == "UPDATE":
                bare_s = statistics.median(figures["UPDATE raw, no requestId"])
                report("UPDATE bare socket, no requestId", f"{bare_s * 1e6:.0f} us",
                       f"with one {raw_s / bare_s:.2f}x; registry CPU "
                       f"{us('UPDATE raw, no requestId server cpu')} us")
                for name in ("unchanged", "refused"):
                    with_s = statistics.median(figures[f"UPDATE {name}, with requestId"])
                    no_s = statistics.median(figures[f"UPDATE {name}, no requestId"])
                    report(f"UPDATE {name} (no object written), with / without requestId",
                           f"{with_s * 1e6:.0f} / {no_s * 1e6:.0f} us",
                           f"{with_s / no_s:.2f}x")
            report(f"{op} RegistryClient", f"{client_s * 1e6:.0f} us",
                   f"client's own +{(client_s - raw_s) * 1e6:.0f} us; "
                   f"{client_s / echo_s:.2f}x the echo")
        stored, event = stored_write(tmp, value("hot", namespace="hot"))
        for metasync in (True, False, True, False):
            seconds = commit_p50(tmp / f"commit-{metasync}", stored, event, 300, metasync)
            report(f"LMDB commit of an update, metasync={metasync}", f"{seconds * 1e6:.0f} us")
        data = b"".join([stored] * 10_000)
        list_decode(data, 10_000)
        if args.profile:
            profile = cProfile.Profile()
            holder = [client.get("ECSMService", "hot", "hot")]
            profile.enable()
            for _ in range(20_000):
                client.get("ECSMService", "hot", "hot")
            for i in range(2_000):
                holder[0]["spec"]["deploymentStrategy"]["replicas"] = 2 + i % 3
                holder[0] = client.update(holder[0])
            profile.disable()
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        client.close()
    finally:
        ctx.destroy(linger=0)
        echo.kill()
        registry.terminate()
        registry.wait(timeout=10)
        echo.wait(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
