"""Echo suppression: a controller ignores the event of its own status write.

Runs in controller processes, shared by the informer thread (:meth:`EchoFilter.admit`)
and the worker threads (:meth:`EchoFilter.begin` / :meth:`EchoFilter.end` around an
``UPDATE_STATUS``). The reply and the event of one write race each other, so:

* an event whose resourceVersion equals one this process wrote for that key is dropped;
* an event arriving while a status write of that key is in flight is held back; when the
  write returns, held events other than its own echo are admitted (the key is enqueued);
* a remembered write is forgotten once any event at or past its resourceVersion arrived
  for the key, or the key is deleted, so memory stays bounded by the keys being written.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class EchoFilter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._written: dict[str, set[int]] = {}
        self._writers: dict[str, int] = {}
        self._held: dict[str, list[int]] = {}

    def begin(self, key: str) -> None:
        """A status write of ``key`` is about to be sent."""
        with self._lock:
            self._writers[key] = self._writers.get(key, 0) + 1
            self._held.setdefault(key, [])

    def end(self, key: str, written: int | None) -> bool:
        """The write returned ``written`` (None: it failed). Return True when an event
        held meanwhile was not its echo, i.e. the key must be enqueued."""
        with self._lock:
            held = self._held[key]
            if written is not None:
                if written in held:
                    held.remove(written)
                else:
                    self._written.setdefault(key, set()).add(written)
            remaining = self._writers[key] - 1
            if remaining:
                self._writers[key] = remaining
                return False
            del self._writers[key]
            return bool(self._held.pop(key))

    def admit(self, key: str, resource_version: int) -> bool:
        """Whether an ADDED/MODIFIED event of ``key`` at ``resource_version`` should
        enqueue the key."""
        with self._lock:
            return self._admit_locked(key, resource_version)

    def admit_all(self, items: Iterable[tuple[str, int]]) -> list[str]:
        """The keys of ``(key, resource_version)`` pairs :meth:`admit` lets through, in
        order, under one lock (an informer's first list)."""
        with self._lock:
            if not self._written and not self._held:  # nothing of ours to filter out
                return [key for key, _ in items]
            return [key for key, rv in items if self._admit_locked(key, rv)]

    def _admit_locked(self, key: str, resource_version: int) -> bool:
        mine = self._written.get(key)
        if mine:
            echo = resource_version in mine
            mine.difference_update([rv for rv in mine if rv <= resource_version])
            if not mine:
                del self._written[key]
            if echo:
                return False
        held = self._held.get(key)
        if held is not None:
            held.append(resource_version)
            return False
        return True

    def forget(self, key: str) -> None:
        with self._lock:
            self._written.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._written)
