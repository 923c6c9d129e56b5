"""A satellite-to-ground link between a test and the registry: an asyncio TCP proxy on
127.0.0.1 with one-way delay, jitter, a bandwidth cap, periodic stalls, random
connection resets and blackouts (kernel netem is not available on these machines).

Runs as its own process, started by :class:`LinkEmulator` (its own process group,
killed at teardown)::

    python -m tests.link_emulator --listen 127.0.0.1:0 --target 127.0.0.1:7700 \\
        [--listen 127.0.0.1:0 --target 127.0.0.1:7701] --delay 0.25 ...

``--listen``/``--target`` pairs are routes over ONE link: every route shares the link's
state (stalls, blackouts, resets) and its bandwidth. Once listening it prints one JSON
line on stdout, ``{"ports": [...], "control": PORT}``, and serves a JSON-lines control
port where each request line gets one reply line:

* ``{"op": "set", "delay": 0.25, "jitter": 0.02, "bandwidth": 20000, "stall_every": 20,
  "stall_for": 5, "reset_every": 10}`` — any subset; 0 turns a fault off;
* ``{"op": "blackout", "reset": false}`` / ``{"op": "restore"}`` — a blackout on demand;
* ``{"op": "reset"}`` — reset every open connection now;
* ``{"op": "stats"}`` — connections accepted/open, resets, bytes each way, stall state.

Every reply is ``{"ok": true, "stats": {...}}`` (or ``{"ok": false, "error": "..."}``).

The model, per direction of each connection, in order (TCP never reorders):

* **delay/jitter**: a chunk read at ``t`` is delivered at ``t + delay ± jitter`` (never
  before the chunk ahead of it). A new connection costs the TCP handshake: the target is
  connected 3 one-way delays after the client connected (SYN, SYN-ACK, ACK) and the
  client's first bytes leave no earlier than 2 delays after its connect;
* **bandwidth** (bytes/s per direction, shared by every connection of the link): chunks
  are sent in slices of at most 20 ms of link time;
* **stalls and blackouts**: nothing is delivered while the link is down, and at most
  ``WINDOW`` bytes are held per direction of a connection (the sender is then blocked as
  by a closed TCP window); connections stay open and the data is delivered when the link
  comes back, in order, one delay after it. A blackout with ``reset: true`` resets every open connection
  and resets each new one at once until ``restore``. New connections during a stall or a
  plain blackout wait (their handshake is held);
* **resets** (``reset_every``: exponential intervals of that mean): every open
  connection of the link is reset on both sides (RST: ``SO_LINGER`` 0 then close), as a
  link drop does. A target that refuses the connection resets the client too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Bytes held at most per direction of a connection before its sender is blocked.
WINDOW = 1 << 20
#: Largest chunk read at once.
CHUNK = 64 << 10
PARAMETERS = ("delay", "jitter", "bandwidth", "stall_every", "stall_for", "reset_every")


@dataclass
class Params:
    delay: float = 0.0
    jitter: float = 0.0
    bandwidth: float = 0.0
    stall_every: float = 0.0
    stall_for: float = 0.0
    reset_every: float = 0.0


@dataclass
class Stats:
    accepted: int = 0
    open: int = 0
    resets: int = 0
    reset_events: int = 0
    stalls: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    down: bool = False
    blackout: bool = False


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Link:
    """The shared state of the link: parameters, up/down, bandwidth clock, connections."""

    def __init__(self, params: Params, seed: int | None) -> None:
        self.params = params
        self.stats = Stats()
        self.rng = random.Random(seed)
        self.up = asyncio.Event()
        self.up.set()
        self.stalled = False
        self.blackout = False
        self.blackout_reset = False
        self.free_at = {"up": 0.0, "down": 0.0}
        self.connections: set[Connection] = set()
        self._stall_task: asyncio.Task[None] | None = None
        self._reset_task: asyncio.Task[None] | None = None

    def _refresh(self) -> None:
        down = self.stalled or self.blackout
        self.stats.down, self.stats.blackout = down, self.blackout
        if down:
            self.up.clear()
        else:
            self.up.set()

    def configure(self, **changes: Any) -> None:
        for key, value in changes.items():
            if key not in PARAMETERS:
                raise ValueError(f"unknown parameter {key!r}")
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{key} must be a number >= 0")
            setattr(self.params, key, float(value))
        if {"stall_every", "stall_for"} & changes.keys() or self._stall_task is None:
            self._restart("_stall_task", self._stall_loop())
        if "reset_every" in changes or self._reset_task is None:
            self._restart("_reset_task", self._reset_loop())

    def _restart(self, attr: str, coro: Any) -> None:
        task = getattr(self, attr)
        if task is not None:
            task.cancel()
        if attr == "_stall_task" and self.stalled:
            self.stalled = False
            self._refresh()
        setattr(self, attr, asyncio.ensure_future(coro))

    async def _stall_loop(self) -> None:
        every, length = self.params.stall_every, self.params.stall_for
        if every <= 0 or length <= 0:
            return
        while True:
            await asyncio.sleep(max(0.0, every - length))
            self.stalled = True
            self.stats.stalls += 1
            self._refresh()
            await asyncio.sleep(length)
            self.stalled = False
            self._refresh()

    async def _reset_loop(self) -> None:
        mean = self.params.reset_every
        if mean <= 0:
            return
        while True:
            await asyncio.sleep(self.rng.expovariate(1.0 / mean))
            self.reset_all()

    def reset_all(self) -> None:
        self.stats.reset_events += 1
        for conn in list(self.connections):
            conn.reset()

    def start_blackout(self, reset: bool) -> None:
        self.blackout, self.blackout_reset = True, reset
        self._refresh()
        if reset:
            self.reset_all()

    def end_blackout(self) -> None:
        self.blackout = self.blackout_reset = False
        self._refresh()

    def due(self, now: float, not_before: float) -> float:
        """When a chunk read now arrives (before order and bandwidth)."""
        p = self.params
        jitter = self.rng.uniform(-p.jitter, p.jitter) if p.jitter else 0.0
        return max(now, not_before) + max(0.0, p.delay + jitter)


class Direction:
    """Bytes of one direction of a connection: read from ``src``, delivered to ``dst``."""

    def __init__(self, conn: Connection, name: str, src: asyncio.StreamReader) -> None:
        self.conn, self.name, self.src = conn, name, src
        self.queue: deque[tuple[float, bytes]] = deque()
        self.held = 0
        self.more = asyncio.Event()  # something was queued
        self.room = asyncio.Event()  # the window has room again
        self.room.set()
        self.last_due = 0.0
        self.not_before = 0.0  # the client's bytes wait for the emulated handshake

    async def read(self) -> None:
        link = self.conn.link
        while True:
            await self.room.wait()
            data = await self.src.read(CHUNK)
            now = time.monotonic()
            due = max(self.last_due, link.due(now, self.not_before))
            self.last_due = due
            self.queue.append((due, data))
            self.held += len(data)
            if self.held >= WINDOW:
                self.room.clear()
            self.more.set()
            if not data:  # EOF: delivered in turn as a half-close
                return

    async def write(self, dst: asyncio.StreamWriter) -> None:
        link = self.conn.link
        while True:
            while not self.queue:
                self.more.clear()
                await self.more.wait()
            due, data = self.queue[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                self.queue.popleft()
                if dst.can_write_eof():
                    dst.write_eof()
                return
            view = memoryview(data)
            while view:
                if not link.up.is_set():  # held bytes still travel once the link is back
                    await link.up.wait()
                    await asyncio.sleep(link.params.delay)
                bw = link.params.bandwidth
                piece = view if bw <= 0 else view[:max(512, int(bw * 0.02))]
                if bw > 0:
                    start = max(time.monotonic(), link.free_at[self.name])
                    link.free_at[self.name] = start + len(piece) / bw
                    await asyncio.sleep(link.free_at[self.name] - time.monotonic())
                    await link.up.wait()
                dst.write(piece)
                await dst.drain()
                if self.name == "up":
                    link.stats.bytes_up += len(piece)
                else:
                    link.stats.bytes_down += len(piece)
                view = view[len(piece):]
            self.queue.popleft()
            self.held -= len(data)
            if self.held < WINDOW:
                self.room.set()


@dataclass(eq=False)
class Connection:
    link: Link
    client_r: asyncio.StreamReader
    client_w: asyncio.StreamWriter
    target: tuple[str, int]
    server_w: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closed: bool = False

    async def run(self) -> None:
        link = self.link
        link.connections.add(self)
        link.stats.accepted += 1
        link.stats.open += 1
        try:
            if link.blackout and link.blackout_reset:
                self.reset()
                return
            start, delay = time.monotonic(), link.params.delay
            up = Direction(self, "up", self.client_r)
            up.not_before = start + 2 * delay
            self.tasks.append(asyncio.ensure_future(up.read()))
            await asyncio.sleep(3 * delay)
            await link.up.wait()
            try:
                server_r, self.server_w = await asyncio.open_connection(*self.target)
            except OSError:
                self.reset()  # refused: the client sees its connection reset
                return
            if self.closed:
                _rst(self.server_w)
                return
            down = Direction(self, "down", server_r)
            self.tasks += [asyncio.ensure_future(up.write(self.server_w)),
                           asyncio.ensure_future(down.read()),
                           asyncio.ensure_future(down.write(self.client_w))]
            done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_EXCEPTION)
            if any(t.exception() for t in done if not t.cancelled()):
                self.reset()  # one side reset or failed: so does the other
            elif all(t.done() for t in self.tasks):
                self.close()
        except asyncio.CancelledError:
            pass
        finally:
            if not self.closed:
                self.close()

    def reset(self) -> None:
        if self.closed:
            return
        self.link.stats.resets += 1
        self._end(rst=True)

    def close(self) -> None:
        self._end(rst=False)

    def _end(self, *, rst: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.link.connections.discard(self)
        self.link.stats.open -= 1
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        for w in (self.client_w, self.server_w):
            if w is None:
                continue
            if rst:
                _rst(w)
            else:
                w.close()


async def _control(link: Link, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while line := await reader.readline():
            try:
                req = json.loads(line)
                op = req.pop("op")
                if op == "set":
                    link.configure(**req)
                elif op == "blackout":
                    link.start_blackout(bool(req.get("reset", False)))
                elif op == "restore":
                    link.end_blackout()
                elif op == "reset":
                    link.reset_all()
                elif op != "stats":
                    raise ValueError(f"unknown op {op!r}")
                reply = {"ok": True, "stats": asdict(link.stats),
                         "params": asdict(link.params)}
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                reply = {"ok": False, "error": str(e)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
    writer.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        raise argparse.ArgumentTypeError("only 127.0.0.1 is allowed")
    return "127.0.0.1", int(port)


async def serve(args: argparse.Namespace) -> None:
    link = Link(Params(**{k: getattr(args, k) for k in PARAMETERS}), args.seed)
    link.configure()
    servers = []
    for listen, target in zip(args.listen, args.target, strict=True):
        async def accept(r: asyncio.StreamReader, w: asyncio.StreamWriter,
                         target: tuple[str, int] = target) -> None:
            await Connection(link, r, w, target).run()
        servers.append(await asyncio.start_server(accept, *listen))
    control = await asyncio.start_server(lambda r, w: _control(link, r, w), *args.control)
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    print(json.dumps({"ports": ports, "control": control.sockets[0].getsockname()[1]}),
          flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.link_emulator",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=_address, action="append", required=True)
    parser.add_argument("--target", type=_address, action="append", required=True)
    parser.add_argument("--control", type=_address, default=("127.0.0.1", 0))
    for name in PARAMETERS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if len(args.listen) != len(args.target):
        parser.error("give one --target per --listen")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


# -- the test side ---------------------------------------------------------------------


class LinkEmulator:
    """Starts the emulator process between 127.0.0.1 ports and changes the link at run
    time. ``targets``: the ports it forwards to (one route each, in order); ``params``:
    see :class:`Params`. Use as a context manager, or call :meth:`stop`; ``log_dir``
    receives its stderr."""

    def __init__(self, targets: list[int], *, log_dir: Path | None = None,
                 seed: int | None = 1, **params: float) -> None:
        cmd = [sys.executable, "-m", "tests.link_emulator"]
        for port in targets:
            cmd += ["--listen", "127.0.0.1:0", "--target", f"127.0.0.1:{port}"]
        for key, value in params.items():
            if key not in PARAMETERS:
                raise TypeError(f"unknown link parameter {key!r}")
            cmd += ["--" + key.replace("_", "-"), str(value)]
        if seed is not None:
            cmd += ["--seed", str(seed)]
        stderr: Any = subprocess.DEVNULL
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            stderr = open(log_dir / "link-emulator.log", "ab")  # noqa: SIM115
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(root)}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, cwd=root,
                                     env=env, start_new_session=True)
        if stderr is not subprocess.DEVNULL:
            stderr.close()
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 15.0)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.stop()
            raise RuntimeError("the link emulator did not start")
        info = json.loads(line)
        self.ports: list[int] = info["ports"]
        self._control = socket.create_connection(("127.0.0.1", info["control"]), timeout=10)
        self._replies = self._control.makefile("rb")

    @property
    def port(self) -> int:
        return self.ports[0]

    def endpoint(self, route: int = 0) -> str:
        """``tcp://127.0.0.1:PORT`` of a route, for a ZeroMQ client."""
        return f"tcp://127.0.0.1:{self.ports[route]}"

    def _call(self, op: str, **fields: Any) -> dict[str, Any]:
        self._control.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
        reply = json.loads(self._replies.readline())
        if not reply["ok"]:
            raise ValueError(reply["error"])
        return reply["stats"]

    def set(self, **params: float) -> dict[str, Any]:
        """Change link parameters (0 turns a fault off); returns the stats."""
        return self._call("set", **params)

    def blackout(self, *, reset: bool = False) -> dict[str, Any]:
        return self._call("blackout", reset=reset)

    def restore(self) -> dict[str, Any]:
        return self._call("restore")

    def reset(self) -> dict[str, Any]:
        return self._call("reset")

    def stats(self) -> dict[str, Any]:
        return self._call("stats")

    @contextlib.contextmanager
    def blacked_out(self, *, reset: bool = False) -> Iterator[None]:
        self.blackout(reset=reset)
        try:
            yield
        finally:
            self.restore()

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if hasattr(self, "_control"):
            self._replies.close()
            self._control.close()

    def __enter__(self) -> LinkEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    main()
