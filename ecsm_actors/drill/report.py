"""The drill's report: what was injected, what healed and how fast, which invariants held.

Runs in the drill process; pure data and rendering (text for people, JSON for
``--report FILE``). The drill passes iff every invariant holds (:attr:`Report.ok`);
recovery times are figures, not verdicts (a fault whose recovery was not observed in
time is listed, and the invariants decide whether the system healed in the end).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecsm_actors.drill.invariants import CheckResult


@dataclass(frozen=True, kw_only=True)
class FaultRecord:
    """One injected fault and, when observed, how long the system took to heal."""

    label: str                     # kill:registry, ecsm-partition, …
    at: float                      # seconds after the timeline started
    recovery: float | None = None  # seconds; None when not observed
    measured_by: str = ""          # canary, ps, ecsm, or why it was not measured
    detail: str = ""
    #: seconds of later faults that blocked its repair, left out of ``recovery``
    blocked: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "at": round(self.at, 3),
                "recovery": None if self.recovery is None else round(self.recovery, 3),
                "measuredBy": self.measured_by, "detail": self.detail,
                "blocked": round(self.blocked, 3)}


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, kw_only=True)
class Report:
    seed: int
    duration: float
    services: int
    run_dir: str = ""
    started_at: str = ""
    faults: tuple[FaultRecord, ...] = ()
    changes: Counter[str] = field(default_factory=Counter)
    writes_acknowledged: int = 0
    writes_in_doubt: int = 0
    writes_abandoned: int = 0
    initial_convergence: float | None = None
    quiesced: bool = False
    time_to_quiescence: float | None = None
    quiescence_blocker: str = ""
    invariants: tuple[CheckResult, ...] = ()
    notes: tuple[str, ...] = ()
    elapsed: float = 0.0
    #: Why the drill stopped before judging (the system did not start, …); empty if not.
    aborted: str = ""

    @property
    def ok(self) -> bool:
        return (not self.aborted and bool(self.invariants)
                and all(r.ok for r in self.invariants))

    def by_kind(self) -> dict[str, dict[str, Any]]:
        """Per fault kind: count, recoveries observed, recovery p50/p99 (seconds)."""
        out: dict[str, dict[str, Any]] = {}
        for label in sorted({f.label for f in self.faults}):
            mine = [f for f in self.faults if f.label == label]
            times = [f.recovery for f in mine if f.recovery is not None]
            out[label] = {"injected": len(mine), "recovered": len(times),
                          "p50": _round(percentile(times, 50)),
                          "p99": _round(percentile(times, 99))}
        return out

    def to_dict(self) -> dict[str, Any]:
        times = [f.recovery for f in self.faults if f.recovery is not None]
        return {
            "ok": self.ok,
            "aborted": self.aborted,
            "seed": self.seed,
            "duration": self.duration,
            "services": self.services,
            "runDir": self.run_dir,
            "startedAt": self.started_at,
            "elapsed": round(self.elapsed, 3),
            "faultsInjected": len(self.faults),
            "recoveriesObserved": len(times),
            "recovery": {"p50": _round(percentile(times, 50)),
                         "p99": _round(percentile(times, 99))},
            "faultsByKind": self.by_kind(),
            "faults": [f.to_dict() for f in self.faults],
            "changes": dict(sorted(self.changes.items())),
            "writes": {"acknowledged": self.writes_acknowledged,
                       "inDoubt": self.writes_in_doubt,
                       "abandoned": self.writes_abandoned},
            "initialConvergence": _round(self.initial_convergence),
            "quiesced": self.quiesced,
            "timeToQuiescence": _round(self.time_to_quiescence),
            "quiescenceBlocker": self.quiescence_blocker,
            "invariants": [r.to_dict() for r in self.invariants],
            "notes": list(self.notes),
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def render(self, max_violations: int = 10) -> str:
        lines = [f"drill seed={self.seed} duration={self.duration:g}s services={self.services}"
                 f" elapsed={self.elapsed:.1f}s run-dir={self.run_dir}"]
        lines.append("")
        lines.append(f"{'FAULT':<30} {'INJECTED':>8} {'RECOVERED':>9} {'P50':>8} {'P99':>8}")
        for label, row in self.by_kind().items():
            lines.append(f"{label:<30} {row['injected']:>8} {row['recovered']:>9} "
                         f"{_secs(row['p50']):>8} {_secs(row['p99']):>8}")
        times = [f.recovery for f in self.faults if f.recovery is not None]
        lines.append(f"{'total':<30} {len(self.faults):>8} {len(times):>9} "
                     f"{_secs(percentile(times, 50)):>8} {_secs(percentile(times, 99)):>8}")
        overlapped = [f for f in self.faults if f.blocked > 0]
        if overlapped:
            lines.append(f"({len(overlapped)} recoveries exclude "
                         f"{sum(f.blocked for f in overlapped):.1f}s in all during which "
                         "a later fault blocked the repair)")
        lines.append("")
        changes = ", ".join(f"{k} {v}" for k, v in sorted(self.changes.items())) or "none"
        lines.append(f"desired-state changes: {changes}")
        lines.append(f"registry writes: {self.writes_acknowledged} acknowledged, "
                     f"{self.writes_in_doubt} in doubt, {self.writes_abandoned} abandoned")
        lines.append(f"initial convergence: {_secs(self.initial_convergence)}")
        if self.quiesced:
            lines.append(f"time to quiescence: {_secs(self.time_to_quiescence)}")
        else:
            lines.append(f"quiescence NOT reached: {self.quiescence_blocker}")
        lines.append("")
        for r in self.invariants:
            lines.append(f"{'PASS' if r.ok else 'FAIL'}  {r.name} ({r.checked} checked)")
            for v in r.violations[:max_violations]:
                lines.append(f"      {v}")
            if len(r.violations) > max_violations:
                lines.append(f"      … and {len(r.violations) - max_violations} more")
        for note in self.notes:
            lines.append(f"note: {note}")
        lines.append("")
        if self.aborted:
            lines.append(f"drill ABORTED: {self.aborted}")
        lines.append("RESULT: " + ("PASS — every invariant holds" if self.ok
                                   else "FAIL — see the violations above"))
        return "\n".join(lines)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}s"
