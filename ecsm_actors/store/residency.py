"""Keeps the registry's resident set small: releases the LMDB map pages it has touched.

Runs in the registry process (Linux; a no-op elsewhere). LMDB reads through a read-only
shared file mapping, so every page the registry ever read (a LIST, a B-tree walk during
a write) stays counted in its RSS although it is clean page cache the kernel may drop at
any time. :class:`MapPages` finds the mapping of ``data.mdb`` in ``/proc/self/maps`` and
``madvise(MADV_DONTNEED)``s it: the page-table entries go, the data stays in the page
cache, and the next access re-maps it with a minor fault. Correctness never depends on
this: the mapping is read-only (the store is opened without ``writemap``), so no write can
be lost, and a failure is logged and ignored.

:func:`trim_heap` hands the free memory of the C heap back to the system
(``malloc_trim``, glibc): after a large write transaction, LMDB's dirty pages and
ZeroMQ's and msgpack's buffers are freed in the middle of the heap, where glibc keeps
them otherwise.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

MADV_DONTNEED = 4

_libc: ctypes.CDLL | None = None


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc; a no-op elsewhere)."""
    global _libc
    if sys.platform != "linux":
        return
    if _libc is None:
        _libc = ctypes.CDLL(None)
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def _find_mapping(path: Path) -> tuple[int, int] | None:
    """(start, end) of the largest mapping of ``path`` in this process, if any."""
    target = str(path.resolve())
    best: tuple[int, int] | None = None
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].strip() == target:
                    start, end = (int(x, 16) for x in parts[0].split("-"))
                    if best is None or end - start > best[1] - best[0]:
                        best = (start, end)
    except OSError:
        return None
    return best


class MapPages:
    """Releases the resident pages of one LMDB data file's mapping."""

    def __init__(self, data_file: Path) -> None:
        self._range = _find_mapping(data_file) if sys.platform == "linux" else None
        self._madvise = None
        if self._range is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            self._madvise = libc.madvise
            self._madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            self._madvise.restype = ctypes.c_int
        else:
            logger.debug("no mapping of %s found; resident pages are not released", data_file)

    def release(self, used_bytes: int) -> None:
        """Drop this process's mappings of the first ``used_bytes`` of the map."""
        if self._range is None or self._madvise is None:
            return
        start, end = self._range
        length = min(end - start, used_bytes + (-used_bytes % 4096))
        if length <= 0:
            return
        if self._madvise(start, length, MADV_DONTNEED) != 0:
            err = ctypes.get_errno()
            logger.warning("madvise failed (%s); no longer releasing pages", os.strerror(err))
            self._range = None
