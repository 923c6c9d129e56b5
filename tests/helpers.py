"""Test helpers: real processes in their own process group, waits with a deadline.

Every process a test starts goes through :class:`Processes`, which kills its whole
process group (SIGKILL) at teardown, so no test leaves an orphan behind. Waits poll a
predicate until a deadline instead of sleeping a fixed time. :func:`cycle` makes the
unreachable garbage cycle the collector tests look for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class Node:
    """A container that can be weakly referenced, to see when a cycle is collected."""

    def __init__(self) -> None:
        self.other: Any = None


def cycle() -> weakref.ref[Node]:
    """A garbage cycle, already unreachable: only the cyclic GC frees it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns a truthy value; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - the condition may not be ready yet
            last_error = e
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}"
                                 f"{detail}")
        time.sleep(interval)


class RecordingHandler:
    """An informer's event handler that records every call, in order, as ``(what, key,
    rv)``: ``what`` is add, update, delete or resync (thread-safe: an informer calls it
    from its own thread)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()

    def _add(self, what: str, key: str, rv: int) -> None:
        with self._lock:
            self.calls.append((what, key, rv))

    def on_add(self, key: str, rv: int) -> None:
        self._add("add", key, rv)

    def on_update(self, key: str, rv: int) -> None:
        self._add("update", key, rv)

    def on_delete(self, key: str, rv: int) -> None:
        self._add("delete", key, rv)

    def on_resync(self, key: str, rv: int) -> None:
        self._add("resync", key, rv)

    def take(self) -> list[tuple[str, str, int]]:
        """The calls recorded since the last take."""
        with self._lock:
            out, self.calls = self.calls, []
        return out

    def adds(self, key_prefix: str) -> list[tuple[str, int]]:
        """``(key, rv)`` of the adds of keys starting with ``key_prefix``."""
        with self._lock:
            return [(k, rv) for what, k, rv in self.calls
                    if what == "add" and k.startswith(key_prefix)]


class Processes:
    """Starts ``python -m ecsm_actors ...`` children for a test and kills them afterwards."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.children: list[subprocess.Popen[bytes]] = []

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
        env["ECSM_ACTORS_RUN_DIR"] = str(self.run_dir)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra or {})
        return env

    def spawn(self, *args: str, env: dict[str, str] | None = None, log_name: str | None = None,
              module: bool = True) -> subprocess.Popen[bytes]:
        """Start a child in a new session (its own process group), logging to the run dir."""
        logs = self.run_dir / "test-logs"
        logs.mkdir(parents=True, exist_ok=True)
        name = log_name or "-".join(a for a in args if not a.startswith("-"))[:60] or "proc"
        log = open(logs / f"{name}.{len(self.children)}.log", "wb")  # noqa: SIM115
        cmd = [sys.executable, "-m", "ecsm_actors", *args] if module else list(args)
        proc = subprocess.Popen(cmd, env=self.env(env), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.children.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def cleanup(self) -> None:
        for proc in self.children:
            self.kill(proc, signal.SIGKILL)
        for proc in self.children:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def logs(self) -> str:
        out = []
        for path in sorted((self.run_dir / "test-logs").glob("*.log")):
            out.append(f"==== {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(out)
