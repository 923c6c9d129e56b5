"""Persistence of the simulator state to one JSON file (``--state FILE``).

Runs inside the simulator process, in one writer thread. Mutations call :meth:`mark`;
the writer waits ``debounce`` seconds (≤ 200 ms) to coalesce a burst, then writes the
snapshot atomically (temporary file in the same directory, fsync, rename). SIGTERM ends
with :meth:`stop`, which flushes. A reader never sees a half-written file; a crash loses
at most the last debounce window.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from ecsm_actors.ecsm.simulator.state import State
from ecsm_actors.files import replace_atomically

logger = logging.getLogger(__name__)


def load(path: Path) -> dict[str, Any] | None:
    """The snapshot in ``path``, None when absent; ValueError when unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ValueError(f"cannot read simulator state {path}: {e.strerror}") from e
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ValueError(f"simulator state {path} is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ValueError(f"simulator state {path} is not a JSON object")
    return doc


def write_atomic(path: Path, data: bytes) -> None:
    replace_atomically(path, data)


class Persister:
    def __init__(self, path: Path, state: State, debounce: float = 0.1) -> None:
        self.path = path
        self.state = state
        self.debounce = min(debounce, 0.2)
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="persister", daemon=True)
        self.writes = 0

    def start(self) -> Persister:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.state.on_change = self.mark
        self.flush()
        self._thread.start()
        return self

    def mark(self) -> None:
        self._dirty.set()

    def flush(self) -> None:
        with self._write_lock:
            self._dirty.clear()
            with self.state.lock:
                data = json.dumps(self.state.snapshot(), ensure_ascii=False).encode()
            write_atomic(self.path, data)
            self.writes += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._dirty.wait(0.5):
                continue
            if self._stop.wait(self.debounce):
                break
            try:
                self.flush()
            except OSError as e:
                logger.error("cannot write simulator state %s: %s", self.path, e)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self.flush()
