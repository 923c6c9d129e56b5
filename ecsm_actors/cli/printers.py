"""Output helpers shared by every ``ecsm-cli`` verb: tables, ages, JSON/YAML dumps.

Runs in the CLI process only. Generic on purpose: no knowledge of any kind lives here —
the verbs build the rows. Tables look like ``kubectl``'s: upper-case headers, columns
separated by three spaces, ``<none>`` for empty cells. Every human-readable view shows
strings through :func:`escape` (control, bidi and invisible characters written as
``\n``, ``\x1b``, ``\u202e``), so a value read from the registry or from ECSM cannot move
the cursor, recolour the terminal, reorder a line or fake one; ``-o json|yaml`` stay exact
(both formats escape such characters themselves).
"""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import click
import yaml

from ecsm_actors.api.echo import escape

__all__ = ["escape"]

OUTPUT_FORMATS = ("table", "wide", "json", "yaml")
NONE = "<none>"


def render_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Column-aligned text: headers then rows (cells rendered with ``str``, escaped)."""
    cells = [[escape(str(h).upper()) for h in headers]]
    cells += [[NONE if c is None or c == "" else escape(str(c)) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in cells]
    return "\n".join(lines)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
                out: TextIO | None = None) -> None:
    click.echo(render_table(headers, rows), file=out)


def parse_time(ts: str | float | int | None) -> float | None:
    """Epoch seconds of an RFC 3339 UTC timestamp (``2024-01-02T03:04:05Z``) or a number."""
    if ts is None or ts == "":
        return None
    if isinstance(ts, (int, float)):
        return float(ts)
    text = str(ts).strip()
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return float(calendar.timegm(time.strptime(text, fmt)))
        except ValueError:
            continue
    return None


def format_duration(seconds: float) -> str:
    """``kubectl``'s human duration: 42s, 3m12s, 45m, 5h3m, 20h, 3d4h, 120d, 3y."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 730:
        return f"{d}d"
    return f"{d // 365}y"


def format_age(ts: str | float | int | None, now: float | None = None) -> str:
    """Age of a timestamp, e.g. ``5m``; ``<unknown>`` when absent or unparsable."""
    then = parse_time(ts)
    if then is None:
        return "<unknown>"
    return format_duration((time.time() if now is None else now) - then)


def dump(obj: Any, fmt: str) -> str:
    """``obj`` (or a list) as JSON or YAML text, keys in their wire order."""
    if fmt == "json":
        return json.dumps(obj, indent=2, ensure_ascii=False)
    if fmt == "yaml":
        return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False,
                              allow_unicode=True).rstrip("\n")
    raise click.UsageError(f"unknown output format {fmt!r} (expected json or yaml)")


def as_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Several objects the way ``kubectl get -o yaml`` prints them."""
    return {"apiVersion": "v1", "kind": "List", "items": items}
