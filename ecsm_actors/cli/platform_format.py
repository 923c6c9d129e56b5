"""Cell and value formats of ecsm-cli's platform verbs, as the Go CLI printed them (§10).

Runs in the ecsm-cli process; pure functions.
"""

from __future__ import annotations

from datetime import datetime


def go_duration(seconds: float) -> str:
    """Go ``time.Duration`` text truncated to seconds: ``49h3m20s``, ``3m5s``, ``7s``."""
    s = max(0, int(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"


def short_uptime(seconds: float) -> str:
    """Node table UPTIME: ``<d>d<h>h<m>m`` (e.g. ``1d2h3m``)."""
    s = max(0, int(seconds))
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    return f"{d}d{h}h{rest // 60}m"


def rfc3339_date(text: str) -> str:
    """``YYYY-MM-DD`` of an RFC 3339 timestamp, or ``N/A``."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%d")
    except ValueError:
        return "N/A"


def bytes_size(n: float) -> str:
    """``x.xx GiB | MiB | KiB`` or ``N B``."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{int(n)} B"


def quantity(n: int) -> str:
    """Bytes as a Kubernetes-style binary quantity: ``1Gi``, ``768Mi``, ``1.5Gi``, ``0``."""
    for unit, factor in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n >= factor:
            whole, rest = divmod(n, factor)
            return f"{whole}{unit}" if not rest else f"{n / factor:.1f}{unit}"
    return str(max(0, n))


def memory_cell(allocated: int | None, total: int | None) -> str:
    """``get nodes -o wide`` MEMORY: allocated/capacity (``768Mi/1Gi``), ``-`` if unknown."""
    if allocated is None or total is None:
        return "-"
    return f"{quantity(allocated)}/{quantity(total)}"


def mb_size(mb: float) -> str:
    """Disk size given in MB: ``x.xx GiB`` from 1024 MB, else ``x.xx MiB``."""
    return f"{mb / 1024:.2f} GiB" if mb >= 1024 else f"{mb:.2f} MiB"


def field(label: str, value: object, width: int = 14, indent: int = 0) -> str:
    """A describe line: ``label`` padded so values start at column ``width``."""
    return f"{' ' * indent}{label:<{width - indent}}{value}"
