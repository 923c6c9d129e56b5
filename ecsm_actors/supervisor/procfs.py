"""What the supervisor reads about other processes, straight from ``/proc`` (Linux).

Runs in the supervisor process. Four figures of a child (RSS, its file-backed share, CPU
seconds, whether it is a zombie) and the environment of a stale child do not need
psutil, which would cost the supervisor 1.4 MiB of private memory; every function
answers ``None`` (or False) for a process that is gone or not readable, never raises.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")
_GONE = (FileNotFoundError, ProcessLookupError, PermissionError)


@dataclass(frozen=True, kw_only=True)
class Usage:
    #: Resident set size, bytes.
    rss: int
    #: The resident pages backed by a file (shared libraries, the LMDB map), bytes.
    shared: int
    #: CPU seconds, user and system.
    cpu: float


def usage(pid: int) -> Usage | None:
    """Memory and CPU of ``pid`` (``/proc/PID/statm`` and ``stat``)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            pages = f.read().split()
        stat = _stat_fields(pid)
    except _GONE:
        return None
    if stat is None or len(pages) < 3 or len(stat) < 13:
        return None
    return Usage(rss=int(pages[1]) * _PAGE, shared=int(pages[2]) * _PAGE,
                 cpu=(int(stat[11]) + int(stat[12])) / _TICKS)


def state(pid: int) -> str | None:
    """The state letter of ``pid`` (``R``, ``S``, ``Z`` for a zombie...), None if gone."""
    try:
        stat = _stat_fields(pid)
    except _GONE:
        return None
    return stat[0].decode() if stat else None


def alive(pid: int) -> bool:
    """Does ``pid`` exist and is it not a zombie?"""
    return state(pid) not in (None, "Z")


def environ(pid: int) -> dict[str, str] | None:
    """The environment ``pid`` was started with (None if gone or not readable)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except _GONE:
        return None
    env: dict[str, str] = {}
    for entry in data.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command name (the state first)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    end = stat.rfind(b")")  # the command name may hold spaces and parentheses
    return stat[end + 2:].split() if end >= 0 else None
