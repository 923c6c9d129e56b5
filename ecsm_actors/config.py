"""Settings of every process: one frozen dataclass tree and the rules that fill it.

Precedence, lowest first: built-in defaults < conf file (TOML) < ``ECSM_ACTORS_*``
environment < command-line flags. Every key ``section.key`` can be set in the
environment as ``ECSM_ACTORS_SECTION_KEY`` (``ECSM_ACTORS_REGISTRY`` is accepted as a
short alias of ``registry.endpoint``, ``ECSM_ACTORS_CONF`` names the conf file).

One run directory (``run.dir``, env ``ECSM_ACTORS_RUN_DIR``) holds every default socket,
the data, pidfiles and logs, so that one variable isolates a whole instance.

A bad value is refused at start with a ``ConfigError`` that names the key. Sizes accept
quantities (``512Mi``, ``1Gi``); durations are seconds (floats).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from ecsm_actors.errors import ConfigError

ENV_PREFIX = "ECSM_ACTORS_"

_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
_DECIMAL = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_bytes(value: str | int) -> int:
    """Parse a byte size: an integer or a quantity such as ``512Mi``, ``1Gi``, ``10M``."""
    if isinstance(value, bool):
        raise ValueError("expected a size, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    text = str(value).strip()
    for table in (_BINARY, _DECIMAL):
        for suffix, factor in table.items():
            if text.endswith(suffix):
                number = text[: -len(suffix)]
                return _non_negative(float(number) * factor)
    return _non_negative(float(text))


def _non_negative(x: float) -> int:
    if x < 0 or x != x:
        raise ValueError("a size cannot be negative")
    return int(x)


class ByteSize(int):
    """Marker type: an ``int`` of bytes that accepts quantities in conf/env/flags."""


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    #: Run directory; empty means ``$XDG_STATE_HOME/ecsm-actors`` (or ~/.local/state/...).
    dir: str = ""


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    #: DEBUG, INFO, WARNING or ERROR.
    level: str = "INFO"
    #: ``text`` for people, ``json`` for machines.
    format: str = "text"


@dataclass(frozen=True, kw_only=True)
class RegistrySettings:
    #: REQ/REP endpoint; empty means ``ipc://<run dir>/registry.sock``.
    endpoint: str = ""
    #: PUB endpoint for events; empty means ``ipc://<run dir>/events.sock``.
    events_endpoint: str = ""
    #: LMDB directory; empty means ``<run dir>/data``.
    data_dir: str = ""
    #: LMDB map size: the hard ceiling of the store.
    map_size: ByteSize = ByteSize(1 << 30)
    #: Refuse writes once the map is this full (fraction), keeping room for deletes.
    full_ratio: float = 0.95
    #: Events kept in the replay log before compaction.
    event_log_limit: int = 100_000
    #: Period of the heartbeat on the PUB socket, seconds.
    heartbeat_interval: float = 1.0
    #: Largest request frame accepted, bytes.
    max_frame_bytes: ByteSize = ByteSize(4 << 20)
    #: Client-side timeout of one request, seconds.
    request_timeout: float = 5.0
    #: Messages queued per subscriber before PUB drops (gaps are repaired by replay).
    pub_hwm: int = 100_000


@dataclass(frozen=True, kw_only=True)
class EcsmSettings:
    #: ``http`` or ``https``.
    protocol: str = "http"
    #: ECSM host. With ``--simulate`` the supervisor points every child at its simulator.
    host: str = "127.0.0.1"
    #: ECSM port (the platform default is 3001).
    port: int = 3001
    #: TCP connect timeout, seconds.
    connect_timeout: float = 3.0
    #: Read timeout of one call, seconds.
    read_timeout: float = 10.0


@dataclass(frozen=True, kw_only=True)
class ControllerSettings:
    #: Reconcile workers per controller process.
    workers: int = 2
    #: Period of the informer's version-only resync, seconds.
    resync_period: float = 300.0
    #: First retry delay of a failing key, seconds (doubles per failure, with jitter).
    backoff_base: float = 0.05
    #: Longest retry delay of a failing key, seconds.
    backoff_cap: float = 30.0
    #: Jitter of a retry delay, as a fraction: each delay is scaled by 1 ± jitter.
    backoff_jitter: float = 0.1
    #: Longest wait between two attempts to reach a registry that is down, seconds.
    watch_retry_cap: float = 2.0
    #: Events the informer's subscriber buffers before ZeroMQ drops some (a loss is
    #: detected and replayed); 0 means ``registry.pub_hwm``.
    event_buffer: int = 0
    #: Consecutive failures after which the object's status gets a condition saying why.
    failure_threshold: int = 5
    #: Period of liveness reports to the supervisor, seconds.
    heartbeat_interval: float = 1.0
    #: No event and no registry heartbeat for this long → reconnect and replay, seconds.
    watch_deadline: float = 5.0
    #: On shutdown, in-flight reconciles get this long to finish, seconds.
    drain_grace: float = 5.0


@dataclass(frozen=True, kw_only=True)
class ServiceControllerSettings:
    #: Every ECSMService is re-checked against ECSM this often (ECSM has no watch), seconds.
    drift_interval: float = 10.0
    #: Consecutive ECSM failures before the condition Degraded/EcsmUnavailable is set.
    unavailable_threshold: int = 3
    #: While a rollout, a repair or a dependency wait is in progress, re-check this often, s.
    poll_interval: float = 1.0
    #: Node states (up/down) are re-read from ECSM at most this often, seconds.
    node_refresh_interval: float = 5.0


@dataclass(frozen=True, kw_only=True)
class HpaSettings:
    #: How often each HPA reads metrics and decides, seconds.
    sync_period: float = 15.0
    #: Default tolerance around the target ratio (per-object ``tolerance`` overrides it).
    tolerance: float = 0.1
    #: Default scale-down stabilization window, seconds.
    downscale_stabilization: float = 300.0
    #: Metrics older than this are treated as missing, seconds.
    metric_max_age: float = 60.0


@dataclass(frozen=True, kw_only=True)
class SupervisorSettings:
    #: Control socket (REQ/REP); empty means ``ipc://<run dir>/control.sock``.
    control_endpoint: str = ""
    #: Where children PUSH liveness reports; empty means ``ipc://<run dir>/heartbeat.sock``.
    heartbeat_endpoint: str = ""
    #: A child counts as started after staying up this long, seconds.
    startsecs: float = 1.0
    #: First restart delay, seconds (doubles per quick failure, with jitter).
    backoff_base: float = 0.2
    #: Longest restart delay, seconds.
    backoff_cap: float = 30.0
    #: This many restarts within ``flap_window`` seconds put the child in HOLD-DOWN.
    flap_restarts: int = 5
    #: Window of the flapping detector, seconds.
    flap_window: float = 60.0
    #: Time spent in HOLD-DOWN before trying again, seconds.
    hold_down: float = 30.0
    #: Give up after this many hold-downs in a row (0 = never give up).
    max_hold_downs: int = 0
    #: A child whose last heartbeat is older than this is killed and restarted, seconds.
    heartbeat_deadline: float = 10.0
    #: A reconcile in flight longer than this marks the child stuck, seconds.
    reconcile_deadline: float = 120.0
    #: A child whose RSS (less file-backed pages, e.g. the LMDB map) is above this is restarted.
    memory_limit: ByteSize = ByteSize(256 << 20)
    #: TERM, then KILL after this long, seconds.
    stop_grace: float = 5.0
    #: A child not ready this long after its start is killed and restarted, seconds.
    ready_timeout: float = 60.0
    #: How often each child's RSS is compared with ``memory_limit``, seconds.
    memory_interval: float = 5.0
    #: Child table (TOML or JSON) replacing the built-in one; empty means the built-in one.
    children_file: str = ""


@dataclass(frozen=True, kw_only=True)
class SimulatorSettings:
    #: HTTP port on 127.0.0.1; 0 picks a free port (recorded in the run dir).
    port: int = 0
    #: Number of seeded nodes.
    nodes: int = 3
    #: Seconds a container stays ``created`` before it is ``running``.
    start_delay: float = 0.5
    #: Persist state to this JSON file (survives a restart); empty means in memory.
    state_file: str = ""


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration. Build it with :func:`load_config`."""

    run: RunSettings = field(default_factory=RunSettings)
    log: LogSettings = field(default_factory=LogSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    ecsm: EcsmSettings = field(default_factory=EcsmSettings)
    controller: ControllerSettings = field(default_factory=ControllerSettings)
    service: ServiceControllerSettings = field(default_factory=ServiceControllerSettings)
    hpa: HpaSettings = field(default_factory=HpaSettings)
    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)

    # -- derived locations: everything defaults into the run directory --------------

    @property
    def run_dir(self) -> Path:
        if self.run.dir:
            return Path(self.run.dir).expanduser()
        state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(state) / "ecsm-actors"

    def _ipc(self, configured: str, name: str) -> str:
        return configured or f"ipc://{self.run_dir / name}"

    @property
    def registry_endpoint(self) -> str:
        return self._ipc(self.registry.endpoint, "registry.sock")

    @property
    def events_endpoint(self) -> str:
        return self._ipc(self.registry.events_endpoint, "events.sock")

    @property
    def data_dir(self) -> Path:
        return Path(self.registry.data_dir) if self.registry.data_dir else self.run_dir / "data"

    @property
    def control_endpoint(self) -> str:
        return self._ipc(self.supervisor.control_endpoint, "control.sock")

    @property
    def heartbeat_endpoint(self) -> str:
        return self._ipc(self.supervisor.heartbeat_endpoint, "heartbeat.sock")

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def pid_dir(self) -> Path:
        return self.run_dir / "pids"

    @property
    def ecsm_address_file(self) -> Path:
        """Where a simulator started in this run dir records its address (JSON)."""
        return self.run_dir / "ecsm-simulator.json"

    @property
    def ecsm_url(self) -> str:
        return f"{self.ecsm.protocol}://{self.ecsm.host}:{self.ecsm.port}"

    def ensure_run_dir(self) -> Path:
        """Create the run directory (mode 0700) and its subfolders; return it."""
        for path in (self.run_dir, self.log_dir, self.pid_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o700)
        return self.run_dir


_ALIASES = {"ECSM_ACTORS_REGISTRY": "registry.endpoint"}


def keys() -> dict[str, type]:
    """Every ``section.key`` with its type."""
    return dict(_keys())


@functools.cache
def _keys() -> dict[str, type]:
    # Evaluating the annotations costs milliseconds; the tree never changes at run time.
    out: dict[str, type] = {}
    hints = get_type_hints(Config)
    for section in dataclasses.fields(Config):
        for name, typ in get_type_hints(hints[section.name]).items():
            out[f"{section.name}.{name}"] = typ
    return out


def _coerce(key: str, typ: type, value: Any) -> Any:
    try:
        if typ is ByteSize:
            return ByteSize(parse_bytes(value))
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            result = float(value)
            if result != result:
                raise ValueError("expected a number")
            return result
        if typ is str:
            if not isinstance(value, str):
                raise ValueError("expected a string")
            return value
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config key {key}: invalid value {value!r}: {e}") from e
    raise ConfigError(f"config key {key}: unsupported type {typ}")


def _check(cfg: Config) -> None:
    """Cross-field and range checks; the message names the key."""
    checks: list[tuple[str, bool, str]] = [
        ("log.level", cfg.log.level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"),
         "expected DEBUG, INFO, WARNING or ERROR"),
        ("log.format", cfg.log.format in ("text", "json"), "expected text or json"),
        ("ecsm.protocol", cfg.ecsm.protocol in ("http", "https"), "expected http or https"),
        ("ecsm.port", 0 < cfg.ecsm.port < 65536, "expected a port 1-65535"),
        ("simulator.port", 0 <= cfg.simulator.port < 65536, "expected a port 0-65535"),
        ("simulator.nodes", cfg.simulator.nodes >= 1, "expected at least 1"),
        ("registry.map_size", cfg.registry.map_size >= 1 << 20, "expected at least 1Mi"),
        ("registry.full_ratio", 0 < cfg.registry.full_ratio <= 1, "expected 0 < ratio <= 1"),
        ("registry.event_log_limit", cfg.registry.event_log_limit >= 1, "expected >= 1"),
        ("controller.workers", cfg.controller.workers >= 1, "expected at least 1"),
        ("controller.backoff_cap", cfg.controller.backoff_cap >= cfg.controller.backoff_base,
         "must be >= controller.backoff_base"),
        ("supervisor.backoff_cap", cfg.supervisor.backoff_cap >= cfg.supervisor.backoff_base,
         "must be >= supervisor.backoff_base"),
    ]
    for key, value in keys().items():
        section, name = key.split(".")
        v = getattr(getattr(cfg, section), name)
        if value is float and v < 0:
            checks.append((key, False, "cannot be negative"))
    for endpoint_key in ("registry.endpoint", "registry.events_endpoint",
                         "supervisor.control_endpoint", "supervisor.heartbeat_endpoint"):
        section, name = endpoint_key.split(".")
        ep = getattr(getattr(cfg, section), name)
        checks.append((endpoint_key, ep == "" or ep.startswith(("ipc://", "tcp://")),
                       "expected ipc://PATH or tcp://HOST:PORT"))
    for key, ok, why in checks:
        if not ok:
            section, name = key.split(".")
            value = getattr(getattr(cfg, section), name)
            raise ConfigError(f"config key {key}: invalid value {value!r}: {why}")


def load_config(
    conf_file: str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the configuration: defaults < conf file < environment < ``overrides`` (flags).

    ``conf_file`` defaults to ``$ECSM_ACTORS_CONF`` when set. ``overrides`` maps
    ``section.key`` to a value; ``None`` values are ignored (an unset flag).
    """
    env = os.environ if environ is None else environ
    known = keys()
    values: dict[str, Any] = {}

    path = conf_file or env.get(ENV_PREFIX + "CONF") or None
    if path:
        import tomllib  # only with a conf file: every process starts faster without it

        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path}: {e}") from e
        for section, table in doc.items():
            if not isinstance(table, dict):
                raise ConfigError(f"config file {path}: [{section}] must be a table")
            for name, value in table.items():
                key = f"{section}.{name}"
                if key not in known:
                    raise ConfigError(f"config file {path}: unknown key {key}")
                values[key] = _coerce(key, known[key], value)

    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var == ENV_PREFIX + "CONF":
            continue
        env_key = _ALIASES.get(var) or _env_key(var, known)
        if env_key is None:
            continue  # not ours to judge: other tools may share the prefix
        values[env_key] = _coerce(f"{env_key} (from {var})", known[env_key], value)

    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in known:
            raise ConfigError(f"unknown config key {key}")
        values[key] = _coerce(key, known[key], value)

    if "ecsm.host" not in values and "ecsm.port" not in values:
        values.update(_simulator_address(values))

    sections: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, name = key.split(".")
        sections.setdefault(section, {})[name] = value
    hints = get_type_hints(Config)
    cfg = Config(**{s: hints[s](**kv) for s, kv in sections.items()})
    _check(cfg)
    return cfg


def _simulator_address(values: Mapping[str, Any]) -> dict[str, Any]:
    """ECSM address recorded by a simulator in the run dir, used when none is configured:
    every process and ``ecsm-cli`` of one run dir then reach the same ECSM without flags."""
    run_dir = values.get("run.dir")
    probe = Config(run=RunSettings(dir=run_dir)) if run_dir else Config()
    try:
        doc = json.loads(probe.ecsm_address_file.read_text())
        return {"ecsm.host": str(doc["host"]), "ecsm.port": int(doc["port"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _env_key(var: str, known: Mapping[str, type]) -> str | None:
    rest = var[len(ENV_PREFIX):].lower()
    for key in known:
        if rest == key.replace(".", "_"):
            return key
    return None


def child_environment(cfg: Config) -> dict[str, str]:
    """Environment that makes a child process see exactly ``cfg`` (used by the supervisor)."""
    env: dict[str, str] = {}
    for key in keys():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        env[ENV_PREFIX + key.replace(".", "_").upper()] = str(value)
    return env


def render_toml(cfg: Config | None = None) -> str:
    """The conf file of ``cfg`` (defaults when None), every key with its ``#:`` comment.

    ``conf/ecsm-actors.toml`` is this output; a unit test keeps the two in step.
    """
    import inspect

    cfg = cfg or Config()
    lines = ["# ecsm-actors configuration. Every key is optional; shown with its default.",
             "# Precedence: defaults < this file < ECSM_ACTORS_SECTION_KEY env < flags.",
             "# Durations are seconds; sizes accept quantities such as 512Mi or 1Gi.", ""]
    hints = get_type_hints(Config)
    for section in dataclasses.fields(Config):
        cls = hints[section.name]
        docs: dict[str, list[str]] = {}
        pending: list[str] = []
        for raw in inspect.getsource(cls).splitlines():
            text = raw.strip()
            if text.startswith("#:"):
                pending.append(text[2:].strip())
            elif ":" in text and not text.startswith(("class", "@", '"')):
                docs[text.split(":")[0].strip()] = pending
                pending = []
        lines.append(f"[{section.name}]")
        for name, typ in get_type_hints(cls).items():
            for doc in docs.get(name, []):
                lines.append(f"# {doc}")
            value = getattr(getattr(cfg, section.name), name)
            if typ is str:
                rendered = json.dumps(value)
            elif typ is ByteSize:
                rendered = json.dumps(_format_bytes(int(value)))
            elif typ is bool:
                rendered = "true" if value else "false"
            else:
                rendered = repr(value)
            lines.append(f"{name} = {rendered}")
        lines.append("")
    return "\n".join(lines)


def _format_bytes(n: int) -> str:
    for suffix, factor in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n and n % factor == 0:
            return f"{n // factor}{suffix}"
    return str(n)
