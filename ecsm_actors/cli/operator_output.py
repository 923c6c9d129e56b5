"""What ``ecsm-operator`` prints: the ``ps`` table and child logs (tail and follow).

Runs in the operator's shell. Pure formatting, plus reading log files in the run dir's
log directory (``<name>.log``, rotated to ``<name>.log.1`` by the supervisor).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ecsm_actors.errors import ControlError

_LOG_LINE = re.compile(r"^\S+ +[A-Z]+ +\S+ +\S+: (.*)$")

COLUMNS = ("NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST-EXIT", "HEARTBEAT-AGE", "QUEUE",
           "ROLE")


def duration(seconds: float | None) -> str:
    """``-``, ``850ms``, ``12s``, ``3m05s``, ``2h07m``, ``3d04h``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _state(row: dict[str, Any]) -> str:
    state = str(row["state"])
    if row.get("retryIn") is not None:
        state += f" ({row['retryIn']:.1f}s)"
    return state


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def ps_table(rows: Sequence[dict[str, Any]]) -> str:
    cells = [COLUMNS] + [(
        str(r["name"]),
        _state(r),
        str(r["pid"]) if r["pid"] is not None else "-",
        duration(r["uptime"]),
        str(r["restarts"]),
        r["lastExit"] or "-",
        _age(r["heartbeatAge"]),
        str(r["queue"]) if r["queue"] is not None else "-",
        r.get("role") or "-",  # leader / standby; - for a child that does not elect
    ) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    notes = [f"  {r['name']}: {r['reason']}" for r in rows
             if r.get("reason") and r["state"] != "RUNNING"]
    return "\n".join(lines + notes)


def last_line(path: os.PathLike[str]) -> str:
    """The last non-empty line of a (log) file, for one-line error messages."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    if not lines:
        return "(empty log)"
    # "<time> <LEVEL> <process> <logger>: <message>" (the text log format) → the message
    match = _LOG_LINE.match(lines[-1].strip())
    return match.group(1) if match else lines[-1].strip()


def print_log(log_dir: Path, name: str, *, lines: int, follow: bool) -> None:
    path = log_dir / f"{name}.log"
    if not path.exists():
        known = sorted(p.stem for p in log_dir.glob("*.log")) if log_dir.is_dir() else []
        raise ControlError(f"no log for {name!r} in {log_dir} "
                           f"(logs: {', '.join(known) or 'none'})")
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - max(lines, 0) * 512))  # enough for the tail, not the whole file
        tail = f.read().decode(errors="replace").splitlines()[-lines:] if lines > 0 else []
        for line in tail:
            click.echo(line)
        if not follow:
            return
        inode = os.fstat(f.fileno()).st_ino
        while True:
            chunk = f.read()
            if chunk:
                click.echo(chunk.decode(errors="replace"), nl=False)
                continue
            time.sleep(0.2)  # the CLI follows a file; the daemon never polls
            try:
                if path.stat().st_ino != inode:  # rotated: continue with the new file
                    return print_log(log_dir, name, lines=0, follow=True)
            except FileNotFoundError:
                continue
