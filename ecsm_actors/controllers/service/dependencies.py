"""``spec.dependsOn``: is every dependency Available, and is this service in a cycle?

Runs inside the service-controller process. Reads other ECSMServices through a getter
(the registry client in production, a dict in tests); no ECSM calls.

A dependency counts when its condition ``Available`` is ``True`` and it is not being
deleted. A missing dependency is waited for (it may be applied later). A cycle is found by
walking ``dependsOn`` from this service through the registry; the walk is bounded so a
huge graph cannot stall a worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: Objects read per walk at most; beyond it the walk gives up looking for a cycle.
WALK_LIMIT = 512

Getter = Callable[[str], dict[str, Any] | None]  # name in the namespace → object or None


@dataclass(frozen=True, kw_only=True)
class DependencyVerdict:
    #: One line per dependency that is not Available yet.
    waiting: tuple[str, ...] = ()
    #: The cycle through this service, as names (first == last), or empty.
    cycle: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return not self.waiting and not self.cycle


def is_available(obj: dict[str, Any]) -> bool:
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return False
    for c in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Available":
            return c.get("status") == "True"
    return False


def depends_on(obj: dict[str, Any] | None) -> list[str]:
    return [str(d) for d in ((obj or {}).get("spec") or {}).get("dependsOn") or ()]


def find_cycle(name: str, deps: Sequence[str], get: Getter) -> tuple[str, ...]:
    """A dependency path from ``name`` back to itself, or ``()``."""
    seen: set[str] = set()
    stack: list[tuple[str, tuple[str, ...]]] = [(d, (name, d)) for d in reversed(deps)]
    reads = 0
    while stack:
        node, path = stack.pop()
        if node == name:
            return path
        if node in seen:
            continue
        seen.add(node)
        reads += 1
        if reads > WALK_LIMIT:
            return ()
        for d in reversed(depends_on(get(node))):
            stack.append((d, (*path, d)))
    return ()


def check(name: str, obj: dict[str, Any], get: Getter) -> DependencyVerdict:
    deps = depends_on(obj)
    if not deps:
        return DependencyVerdict()
    cache: dict[str, dict[str, Any] | None] = {}

    def cached(n: str) -> dict[str, Any] | None:
        if n not in cache:
            cache[n] = get(n)
        return cache[n]

    cycle = find_cycle(name, deps, cached)
    waiting = []
    for d in deps:
        dep = cached(d)
        if dep is None:
            waiting.append(f"{d}: not found")
        elif not is_available(dep):
            waiting.append(f"{d}: not Available")
    return DependencyVerdict(waiting=tuple(waiting), cycle=cycle)
