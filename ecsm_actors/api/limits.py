"""Upper bounds of API fields that a real device may need raised: replicas, nodes, memory,
disk.

Owns :class:`Limits` (defaults, documented in ``conf/ecsm-actors.toml`` under ``[api]``),
:func:`bounded` (how a schema node takes one of them) and :func:`configure_limits` (how a
process applies the configured ones). Runs in every process; the registry — the only
process that validates writes — calls :func:`configure_limits` with ``cfg.api`` at start.
Invariants: a node made with :func:`bounded` always carries the current value of its
limit; after :func:`configure_limits` the compiled fast path is rebuilt, so both walkers
judge alike.

The fixed bounds (lengths of strings, counts of lists, periods) are the constants below,
used where each field is declared (``service_schema``, ``hpa_schema``, ``meta``); the
README's API section lists them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from ecsm_actors.api.compiled import forget_compiled
from ecsm_actors.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Limits:
    #: Largest replica count of a service, minReplicas/maxReplicas of an HPA and integer
    #: maxSurge/maxUnavailable.
    max_replicas: int = 1000
    #: Most nodes in a Static service's ``nodes`` or a Dynamic one's ``nodePool``.
    max_nodes: int = 1000
    #: Largest memory limit (and SylixOS kheapLimit) of a service, bytes.
    max_memory: int = 1 << 40
    #: Largest disk limit of a service, bytes.
    max_disk: int = 64 << 40


# -- fixed bounds ---------------------------------------------------------------------

#: Characters of an image reference ``name@tag#os``.
MAX_IMAGE = 512
#: Characters of a hostname (a DNS name).
MAX_HOSTNAME = 253
#: Arguments of ``template.command``, and characters of each.
MAX_COMMAND_ARGS = 256
MAX_ARG = 4096
#: Variables of ``template.env``; characters of a name and of a value.
MAX_ENV = 256
MAX_ENV_NAME = 256
MAX_ENV_VALUE = 32768
#: ``volumeMounts`` and SylixOS ``devices``.
MAX_VOLUMES = 64
MAX_DEVICES = 64
#: Characters of a path (PATH_MAX), of a short word (volume name, device access,
#: platform os/arch) and of the VSOA password.
MAX_PATH = 4096
MAX_WORD = 253
MAX_PASSWORD = 256
#: Services a service may depend on.
MAX_DEPENDS_ON = 64
#: ``spec.priority`` lies in ``-MAX_PRIORITY..MAX_PRIORITY`` (Kubernetes' user classes).
MAX_PRIORITY = 1_000_000_000
#: ``rollout.revisionHistoryLimit``.
MAX_REVISION_HISTORY = 100
#: VSOA health check: timeout, failure threshold, initial delay and period.
MAX_PROBE_TIMEOUT = 3600
MAX_PROBE_FAILURES = 1000
MAX_PROBE_SECONDS = 86400
#: Labels, annotations and finalizers of an object. An annotation's value has no bound
#: of its own (the service controller keeps revision templates there): the request frame
#: (``registry.max_frame_bytes``) bounds it.
MAX_LABELS = 256
MAX_ANNOTATIONS = 512
MAX_FINALIZERS = 32
#: HPA: policies per direction, a policy's value (pods or percent), a CPU utilization
#: target (percent of the limit; memory's is at most 100).
MAX_POLICIES = 10
MAX_POLICY_VALUE = 10_000
MAX_CPU_UTILIZATION = 10_000


DEFAULT = Limits()
_current = DEFAULT

N = TypeVar("N")
_bound: list[tuple[Any, str, Callable[[Limits], int]]] = []


def current() -> Limits:
    """The limits in force in this process."""
    return _current


def bounded(node: N, attr: str, limit: Callable[[Limits], int]) -> N:
    """``node`` with its ``attr`` set to ``limit(current())`` now and after every
    :func:`configure_limits`."""
    setattr(node, attr, limit(_current))
    _bound.append((node, attr, limit))
    return node


def configure_limits(settings: Any) -> Limits:
    """Apply limits given as attributes of ``settings`` (``cfg.api``); return them.

    Raises ``ConfigError`` naming the key when one is not a positive integer."""
    global _current
    values: dict[str, int] = {}
    for f in fields(Limits):
        value = getattr(settings, f.name, getattr(DEFAULT, f.name))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"config key api.{f.name}: invalid value {value!r}: "
                              "expected a positive integer")
        values[f.name] = int(value)
    _current = Limits(**values)
    for node, attr, limit in _bound:
        setattr(node, attr, limit(_current))
    forget_compiled()
    return _current
