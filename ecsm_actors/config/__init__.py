"""Settings of every process: one frozen dataclass tree and the rules that fill it.

Precedence, lowest first: built-in defaults < conf file (TOML) < ``ECSM_ACTORS_*``
environment < command-line flags. Every key ``section.key`` can be set in the
environment as ``ECSM_ACTORS_SECTION_KEY`` (``ECSM_ACTORS_REGISTRY`` is accepted as a
short alias of ``registry.endpoint``, ``ECSM_ACTORS_CONF`` names the conf file).

One run directory (``run.dir``, env ``ECSM_ACTORS_RUN_DIR``) holds every default socket,
the data, pidfiles and logs, so that one variable isolates a whole instance.

A bad value is refused at start with a ``ConfigError`` that names the key. Sizes accept
quantities (``512Mi``, ``1Gi``); durations are seconds (floats).

:mod:`.settings` owns the tree, :mod:`.loading` the precedence rules, :mod:`.render` the
commented conf file.
"""

from __future__ import annotations

from ecsm_actors.config.loading import (
    check_served_endpoints,
    child_environment,
    is_loopback,
    keys,
    load_config,
)
from ecsm_actors.config.settings import (
    ENV_PREFIX,
    ByteSize,
    Config,
    ControllerSettings,
    EcsmSettings,
    HpaSettings,
    LogSettings,
    RegistrySettings,
    RunSettings,
    ServiceControllerSettings,
    SimulatorSettings,
    StoreSettings,
    StrList,
    SupervisorSettings,
    parse_bytes,
)


def render_toml(cfg: Config | None = None) -> str:
    """The commented TOML of ``cfg`` (see :mod:`.render`; imported on use)."""
    from ecsm_actors.config.render import render_toml as render

    return render(cfg)


__all__ = [
    "StoreSettings",
    "StrList",
    "ENV_PREFIX",
    "ByteSize",
    "Config",
    "ControllerSettings",
    "EcsmSettings",
    "HpaSettings",
    "LogSettings",
    "RegistrySettings",
    "RunSettings",
    "ServiceControllerSettings",
    "SimulatorSettings",
    "SupervisorSettings",
    "check_served_endpoints",
    "child_environment",
    "is_loopback",
    "keys",
    "load_config",
    "parse_bytes",
    "render_toml",
]
