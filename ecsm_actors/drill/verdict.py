"""One invariant's verdict: :class:`CheckResult` (name, violations, how many checked).

Runs in the drill process; pure data shared by :mod:`.invariants`, :mod:`.capacity` and
the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    name: str
    violations: tuple[str, ...] = ()
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "checked": self.checked,
                "violations": list(self.violations)}


def result(name: str, violations: Iterable[str], checked: int) -> CheckResult:
    return CheckResult(name=name, violations=tuple(violations), checked=checked)
