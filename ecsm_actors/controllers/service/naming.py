"""Names of the ECSM services that belong to one ECSMService: ownership without memory.

Runs inside the service-controller process and ``ecsm-cli rollout``.

An ECSMService ``namespace/name`` owns exactly the ECSM services named
``{namespace}.{name}.{revision}``, where ``revision`` is the 10-hex-char
:func:`ecsm_actors.api.template_hash` of its (defaulted) template. The controller finds
them by listing ECSM with the name filter :func:`owned_prefix` and keeping only the rows
that :func:`parse_owned` accepts — never from anything held in process memory — so a
controller killed at any line is replaced by one that sees exactly the same set.

Invariants: object names and namespaces are DNS-1123 labels (no dots), so the three parts
split unambiguously; ECSM's ``name`` filter is a substring match, hence the exact parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REVISION = re.compile(r"^[0-9a-f]{10}$")


@dataclass(frozen=True, kw_only=True)
class OwnedName:
    """The parts of an owned ECSM service name."""

    namespace: str
    name: str
    revision: str

    def __str__(self) -> str:
        return service_name(self.namespace, self.name, self.revision)


def service_name(namespace: str, name: str, revision: str) -> str:
    """The ECSM service name of one revision of ``namespace/name``."""
    return f"{namespace}.{name}.{revision}"


def owned_prefix(namespace: str, name: str) -> str:
    """The ECSM ``name`` filter that lists every revision of ``namespace/name``."""
    return f"{namespace}.{name}."


def parse_owned(ecsm_name: str, namespace: str, name: str) -> OwnedName | None:
    """The parts of ``ecsm_name`` when it is a revision of ``namespace/name``, else None."""
    prefix = owned_prefix(namespace, name)
    if not ecsm_name.startswith(prefix):
        return None
    revision = ecsm_name[len(prefix):]
    if not _REVISION.match(revision):
        return None
    return OwnedName(namespace=namespace, name=name, revision=revision)


def parse_any(ecsm_name: str) -> OwnedName | None:
    """The parts of ``ecsm_name`` when it is a revision of some ECSMService (what a sweep
    over every ECSM service groups rows by), else None."""
    parts = ecsm_name.split(".")
    if len(parts) != 3 or not all(parts) or not _REVISION.match(parts[2]):
        return None
    return OwnedName(namespace=parts[0], name=parts[1], revision=parts[2])


def split_key(key: str) -> tuple[str, str]:
    """``namespace/name`` → ``(namespace, name)``; a bare name is in ``default``."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else ("default", namespace)
