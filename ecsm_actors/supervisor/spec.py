"""What the supervisor runs: one :class:`ChildSpec` per child, and how readiness is judged.

Runs in the supervisor process. A spec is pure data (frozen), so the child table is data
too: the built-in table lives in :mod:`.children`, a custom one can be read from a file,
and tests run the same restart machine over small test programs.

Invariants: ``name`` is unique in a table and is also the name the child reports its
liveness under; every duration is in seconds and non-negative; a watchdog limit of 0
disables that check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ecsm_actors.config import SupervisorSettings
from ecsm_actors.errors import ConfigError


class RestartPolicy(StrEnum):
    """When a child that exited on its own is started again (Erlang/OTP names)."""

    PERMANENT = "permanent"  #: always
    TRANSIENT = "transient"  #: only after an abnormal exit (non-zero code or a signal)
    TEMPORARY = "temporary"  #: never


class ReadinessKind(StrEnum):
    """How the supervisor decides that a started child is ready (STARTING → RUNNING)."""

    SPAWNED = "spawned"  #: as soon as the process exists
    LIVENESS = "liveness"  #: first liveness report (with ``stat`` truthy when set)
    REGISTRY_PING = "registry-ping"  #: the registry at ``endpoint`` answers PING with our pid
    ADDRESS_FILE = "address-file"  #: ``path`` holds {"host","port","pid"} and TCP connects
    #: The child is the zygote (:mod:`.zygote`): ready when it says so on its socket; the
    #: children started after it are forked from it.
    ZYGOTE = "zygote"


@dataclass(frozen=True, kw_only=True)
class Readiness:
    kind: ReadinessKind = ReadinessKind.SPAWNED
    #: LIVENESS: the ``stats`` key that must be true (e.g. ``synced``); empty = any report.
    stat: str = ""
    #: REGISTRY_PING: the registry endpoint (ZeroMQ, or its ``unix://`` stream endpoint).
    endpoint: str = ""
    #: ADDRESS_FILE: the JSON file the child writes once it listens.
    path: str = ""


@dataclass(frozen=True, kw_only=True)
class ChildSpec:
    """One supervised child: how to start it, when it is ready, how to restart and watch it."""

    name: str
    argv: tuple[str, ...]
    policy: RestartPolicy = RestartPolicy.PERMANENT
    readiness: Readiness = field(default_factory=Readiness)
    #: Children that must be ready (or have failed once) before the first start of this
    #: one; stopping the supervisor stops dependents first. Restarts ignore this (one-for-one).
    depends_on: tuple[str, ...] = ()
    #: Extra environment of this child (on top of the configuration's environment).
    env: tuple[tuple[str, str], ...] = ()
    #: A run shorter than this (or never ready) is a failed start; a longer one resets backoff.
    startsecs: float = 1.0
    #: Not ready this long after the start → killed, counted as a failed start.
    ready_timeout: float = 60.0
    #: TERM, then KILL after this long.
    stop_grace: float = 5.0
    backoff_base: float = 0.2
    backoff_cap: float = 30.0
    #: Each backoff delay is scaled by a random factor in ``[1 - jitter, 1]``.
    backoff_jitter: float = 0.25
    flap_restarts: int = 5
    flap_window: float = 60.0
    hold_down: float = 30.0
    #: Give up (EXITED) when flapping again after this many hold-downs; 0 = never.
    max_hold_downs: int = 0
    #: Watchdog: no liveness report for this long → killed; 0 = not watched.
    heartbeat_deadline: float = 0.0
    #: Watchdog: oldest in-flight reconcile older than this → killed; 0 = not watched.
    reconcile_deadline: float = 0.0
    #: Watchdog: RSS above this many bytes → killed; 0 = not watched.
    memory_limit: int = 0

    def __post_init__(self) -> None:
        if not self.name or not self.argv:
            raise ConfigError(f"child {self.name!r}: name and argv are required")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"child {self.name}: {f.name} cannot be negative")
        if self.flap_restarts < 1:
            raise ConfigError(f"child {self.name}: flap_restarts must be at least 1")
        if self.backoff_cap < self.backoff_base:
            raise ConfigError(f"child {self.name}: backoff_cap must be >= backoff_base")
        if not 0 <= self.backoff_jitter <= 1:
            raise ConfigError(f"child {self.name}: backoff_jitter must be within 0..1")


def settings_defaults(settings: SupervisorSettings) -> dict[str, Any]:
    """The ChildSpec fields that default to the ``[supervisor]`` configuration."""
    return {
        "startsecs": settings.startsecs,
        "ready_timeout": settings.ready_timeout,
        "stop_grace": settings.stop_grace,
        "backoff_base": settings.backoff_base,
        "backoff_cap": settings.backoff_cap,
        "flap_restarts": settings.flap_restarts,
        "flap_window": settings.flap_window,
        "hold_down": settings.hold_down,
        "max_hold_downs": settings.max_hold_downs,
        "heartbeat_deadline": settings.heartbeat_deadline,
        "reconcile_deadline": settings.reconcile_deadline,
        "memory_limit": int(settings.memory_limit),
    }


_SPEC_FIELDS = {f.name: f for f in dataclasses.fields(ChildSpec)}


def spec_from_mapping(doc: Mapping[str, Any], settings: SupervisorSettings) -> ChildSpec:
    """Build a ChildSpec from a table entry (TOML/JSON); unset fields come from ``settings``.

    Raises ConfigError naming the child and the key on any bad value.
    """
    name = str(doc.get("name", ""))
    unknown = set(doc) - set(_SPEC_FIELDS)
    if unknown:
        raise ConfigError(f"child {name!r}: unknown keys {sorted(unknown)}")
    values: dict[str, Any] = settings_defaults(settings)
    try:
        for key, value in doc.items():
            if key == "argv" or key == "depends_on":
                if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                    raise ValueError("expected a list of strings")
                values[key] = tuple(value)
            elif key == "env":
                if not isinstance(value, dict):
                    raise ValueError("expected a table of strings")
                values[key] = tuple((str(k), str(v)) for k, v in value.items())
            elif key == "policy":
                values[key] = RestartPolicy(value)
            elif key == "readiness":
                values[key] = _readiness(value)
            elif key == "name":
                values[key] = name
            else:
                values[key] = _number(value, int if key in _INT_FIELDS else float)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"child {name!r}: invalid value of {key}: {e}") from e
    return ChildSpec(**values)


_INT_FIELDS = {"flap_restarts", "max_hold_downs", "memory_limit"}


def _number(value: Any, typ: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected a number")
    if typ is int and isinstance(value, float) and not value.is_integer():
        raise ValueError("expected an integer")
    return typ(value)


def _readiness(value: Any) -> Readiness:
    if isinstance(value, str):
        return Readiness(kind=ReadinessKind(value))
    if isinstance(value, dict):
        extra = set(value) - {"kind", "stat", "endpoint", "path"}
        if extra:
            raise ValueError(f"unknown readiness keys {sorted(extra)}")
        return Readiness(
            kind=ReadinessKind(value.get("kind", "spawned")),
            stat=str(value.get("stat", "")),
            endpoint=str(value.get("endpoint", "")),
            path=str(value.get("path", "")),
        )
    raise ValueError("expected a kind or a table")
