"""Building a :class:`~ecsm_actors.config.settings.Config`: defaults < conf file <
environment < flags, every value coerced to its key's type and checked.

Every key ``section.key`` can be set in the environment as ``ECSM_ACTORS_SECTION_KEY``
(``ECSM_ACTORS_REGISTRY`` is a short alias of ``registry.endpoint``, ``ECSM_ACTORS_CONF``
names the conf file). A bad value raises a ``ConfigError`` that names the key. When no
ECSM address is configured anywhere, the one a simulator recorded in the run directory
is used, so every process and ``ecsm-cli`` of one run dir reach the same ECSM.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import os
from collections.abc import Mapping
from typing import Any, get_type_hints

from ecsm_actors.config.settings import (
    ENV_PREFIX,
    ByteSize,
    Config,
    RunSettings,
    StrList,
    parse_bytes,
)
from ecsm_actors.errors import ConfigError

_ALIASES = {"ECSM_ACTORS_REGISTRY": "registry.endpoint"}


def keys() -> dict[str, type]:
    """Every ``section.key`` with its type."""
    return dict(_keys())


@functools.cache
def _sections() -> dict[str, Any]:
    """Each section's settings class (the zygote evaluates it once, with :func:`keys`,
    for every child: 0.2-0.5 ms of a forked child's ``load_config`` otherwise)."""
    return get_type_hints(Config)


@functools.cache
def _keys() -> dict[str, type]:
    # Evaluating the annotations costs milliseconds; the tree never changes at run time.
    out: dict[str, type] = {}
    hints = _sections()
    for section in dataclasses.fields(Config):
        for name, typ in get_type_hints(hints[section.name]).items():
            out[f"{section.name}.{name}"] = typ
    return out


def _coerce(key: str, typ: type, value: Any) -> Any:
    try:
        if typ is ByteSize:
            return ByteSize(parse_bytes(value))
        if typ is StrList:
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)) or not all(
                    isinstance(i, str) for i in items):
                raise ValueError("expected a list of strings (comma-separated outside TOML)")
            return StrList(i.strip() for i in items if i.strip())
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
        ("registry.commit_delay", cfg.registry.commit_delay <= 0.01,
         "expected at most 0.01 (seconds a turn of several writers may wait)"),
        ("controller.workers", cfg.controller.workers >= 1, "expected at least 1"),
        ("controller.backoff_cap", cfg.controller.backoff_cap >= cfg.controller.backoff_base,
         "must be >= controller.backoff_base"),
        ("controller.retry_burst", cfg.controller.retry_burst >= 1, "expected at least 1"),
        ("controller.renew_deadline",
         0 < cfg.controller.renew_deadline < cfg.controller.lease_duration,
         "must be > 0 and < controller.lease_duration"),
        ("controller.retry_period",
         0 < cfg.controller.retry_period < cfg.controller.renew_deadline,
         "must be > 0 and < controller.renew_deadline"),
        ("store.backend", cfg.store.backend in ("lmdb", "etcd"), "expected lmdb or etcd"),
        ("store.etcd_endpoints", cfg.store.backend != "etcd" or bool(cfg.store.etcd_endpoints),
         "store.backend = \"etcd\" needs at least one endpoint"),
        ("store.etcd_endpoints", all(e.startswith(("http://", "https://"))
                                     for e in cfg.store.etcd_endpoints),
         "expected http://HOST:PORT or https://HOST:PORT URLs"),
        ("store.etcd_prefix", cfg.store.etcd_prefix.startswith("/")
         and cfg.store.etcd_prefix.endswith("/") and len(cfg.store.etcd_prefix) > 1,
         "expected a key prefix that starts and ends with '/', such as /ecsm-actors/"),
        ("store.etcd_cert_file", bool(cfg.store.etcd_cert_file) == bool(cfg.store.etcd_key_file),
         "store.etcd_cert_file and store.etcd_key_file go together"),
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
    stream = cfg.registry.stream_endpoint.strip()
    checks.append(("registry.stream_endpoint", stream == "" or stream.lower() == "off" or (
        stream.startswith("unix://") and len(stream) > len("unix://")),
        "expected unix://PATH, or off"))
    stream_events = cfg.registry.stream_events_endpoint.strip()
    checks.append(("registry.stream_events_endpoint", stream_events == ""
                   or stream_events.lower() == "off" or (
                       stream_events.startswith("unix://") and len(stream_events) > 7
                       and stream_events != stream),
                   "expected unix://PATH (not registry.stream_endpoint's), or off"))
    # A stream endpoint's socket file shared with another socket's: each binding removes
    # a stale file first (stream.listen, server.bind), so one would unlink the other's.
    files = {key: _socket_file(endpoint) for key, endpoint in (
        ("registry.endpoint", cfg.registry_endpoint),
        ("registry.events_endpoint", cfg.events_endpoint),
        ("supervisor.control_endpoint", cfg.control_endpoint),
        ("supervisor.heartbeat_endpoint", cfg.heartbeat_endpoint),
        ("registry.stream_endpoint", cfg.registry_stream_endpoint),
        ("registry.stream_events_endpoint", cfg.registry_stream_events_endpoint))}
    for key in ("registry.stream_endpoint", "registry.stream_events_endpoint"):
        path = files[key]
        other = next((k for k, p in files.items() if k != key and p and p == path), "")
        checks.append((key, not other, f"its socket file {path} is also {other}'s (binding "
                                       "one would remove the other's)"))
    for endpoint_key in ("registry.remote_endpoint", "registry.remote_events_endpoint"):
        ep = getattr(cfg.registry, endpoint_key.split(".")[1])
        checks.append((endpoint_key, ep == "" or ep.startswith("tcp://"),
                       "expected tcp://HOST:PORT (served with CURVE)"))
        checks.append((endpoint_key, ep == "" or ep not in (cfg.registry_endpoint,
                                                            cfg.events_endpoint),
                       "must differ from registry.endpoint and registry.events_endpoint"))
    remote_events = cfg.registry.remote_events_endpoint
    checks.append(("registry.remote_events_endpoint",
                   remote_events == "" or remote_events.endswith((":*", ":0"))
                   or remote_events != cfg.registry.remote_endpoint,
                   "must differ from registry.remote_endpoint"))
    for key, ok, why in checks:
        if not ok:
            section, name = key.split(".")
            value = getattr(getattr(cfg, section), name)
            raise ConfigError(f"config key {key}: invalid value {value!r}: {why}")


def _socket_file(endpoint: str) -> str:
    """The socket file an ``ipc://`` or ``unix://`` endpoint binds (absolute), else ""."""
    for scheme in ("ipc://", "unix://"):
        if endpoint.startswith(scheme) and len(endpoint) > len(scheme):
            return os.path.normpath(os.path.abspath(endpoint[len(scheme):]))
    return ""


def is_loopback(endpoint: str) -> bool:
    """Whether a ``tcp://HOST:PORT`` endpoint is on a loopback address (127.0.0.0/8,
    ``::1``, ``localhost``): reachable only from this computer."""
    host = endpoint.removeprefix("tcp://").rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a wildcard, an interface or a host name: not provably local
        return False


def check_served_endpoints(cfg: Config) -> None:
    """Refuse to serve the registry on plain TCP beyond this computer: remote access is
    CURVE or nothing (``registry.remote_endpoint``); loopback TCP stays allowed (tests).
    Run where the endpoints are bound (the registry, the supervisor's start), not in
    :func:`load_config`: a client names a remote registry with ``registry.endpoint``."""
    for key in ("registry.endpoint", "registry.events_endpoint"):
        ep = getattr(cfg.registry, key.split(".")[1])
        if ep.startswith("tcp://") and not is_loopback(ep):
            raise ConfigError(
                f"config key {key}: {ep!r} would serve the registry without encryption or "
                "authentication: plain tcp:// only on a loopback address (127.0.0.1, ::1); "
                "for remote access set registry.remote_endpoint / "
                "registry.remote_events_endpoint (served with CURVE)")


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
    hints = _sections()
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
    key = _env_names().get(var[len(ENV_PREFIX):].lower())
    return key if key is not None and key in known else None


@functools.cache
def _env_names() -> dict[str, str]:
    # ``section_name`` → ``section.name``, the first key of a name winning: looked up
    # once per variable (a scan of every key per variable cost a millisecond per start)
    out: dict[str, str] = {}
    for key in _keys():
        out.setdefault(key.replace(".", "_"), key)
    return out


def child_environment(cfg: Config) -> dict[str, str]:
    """Environment that makes a child process see exactly ``cfg`` (used by the supervisor)."""
    env: dict[str, str] = {}
    for key in keys():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        env[ENV_PREFIX + key.replace(".", "_").upper()] = str(value)
    return env
