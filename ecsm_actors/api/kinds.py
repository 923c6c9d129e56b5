"""The kinds of group ``ecsm.sh/v1`` and the names users may call them by."""

from __future__ import annotations

from dataclasses import dataclass

from ecsm_actors.errors import Cause, Invalid

API_VERSION = "ecsm.sh/v1"


@dataclass(frozen=True, kw_only=True)
class KindInfo:
    kind: str
    plural: str
    short_names: tuple[str, ...]


KINDS: dict[str, KindInfo] = {
    "ECSMService": KindInfo(kind="ECSMService", plural="ecsmservices", short_names=("esvc",)),
    "ECSMHpa": KindInfo(kind="ECSMHpa", plural="ecsmhpas", short_names=("hpa",)),
}


def resolve_kind(word: str) -> str:
    """Map any accepted spelling of a kind to its canonical name."""
    w = word.strip().lower()
    for info in KINDS.values():
        if w in (info.kind.lower(), info.plural, *info.short_names):
            return info.kind
    known = ", ".join(f"{i.plural} ({'/'.join(i.short_names)})" for i in KINDS.values())
    raise Invalid(f"unknown kind {word!r}", [Cause(field="kind", message=f"expected {known}")])
