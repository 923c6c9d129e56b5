"""Process main of ``python -m ecsm_actors controller <name> [--conf FILE]``.

Runs one controller process: loads ``ecsm_actors.controllers.<name>:build(cfg)`` (imported
lazily, so a controller's dependencies load only in its own process), runs the
:class:`~ecsm_actors.runtime.Controller` until SIGTERM/SIGINT, then drains in-flight
reconciles within ``controller.drain_grace`` and exits 0. Exits 2 on a bad name or
configuration, 1 if a runtime thread died or it lost its leader lease with reconciles
still running (:mod:`ecsm_actors.runtime.leader`; the supervisor restarts the process).
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
from types import ModuleType

from ecsm_actors import lifecycle, logs
from ecsm_actors.config import Config, load_config
from ecsm_actors.errors import ConfigError, EcsmActorsError
from ecsm_actors.informer.ahead import FirstList
from ecsm_actors.runtime import Controller, ControllerSpec
from ecsm_actors.runtime.controller import list_ahead

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def load_spec(name: str, cfg: Config) -> ControllerSpec:
    """``ecsm_actors.controllers.<name>:build(cfg)``; ConfigError if there is none."""
    return build_spec(name, controller_module(name), cfg)


def controller_module(name: str) -> ModuleType:
    """``ecsm_actors.controllers.<name>``; ConfigError if there is none."""
    if not _NAME.match(name) or name == "main":
        raise ConfigError(f"unknown controller {name!r}")
    try:
        return importlib.import_module(f"ecsm_actors.controllers.{name}")
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith(f"ecsm_actors.controllers.{name}"):
            raise ConfigError(f"unknown controller {name!r}") from e
        raise


def build_spec(name: str, module: ModuleType, cfg: Config) -> ControllerSpec:
    """The spec ``module.build(cfg)`` returns; ConfigError if it has no build."""
    build = getattr(module, "build", None)
    if build is None:
        raise ConfigError(f"ecsm_actors.controllers.{name} has no build(cfg)")
    spec = build(cfg)
    if not isinstance(spec, ControllerSpec):
        raise ConfigError(f"ecsm_actors.controllers.{name}.build returned {type(spec).__name__}")
    return spec


def parse_args(argv: list[str]) -> tuple[str, str | None]:
    """``NAME [--conf FILE]`` → (name, conf). The supervisor's plain forms are read
    directly; anything else (``--help``, errors, ``--conf=FILE``) goes to argparse,
    imported only then: it costs a few milliseconds of every controller start."""
    if len(argv) in (1, 3) and not argv[0].startswith("-") and argv[1:2] in ([], ["--conf"]):
        return argv[0], argv[2] if len(argv) == 3 else None
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ecsm_actors controller")
    parser.add_argument("name", help="service, hpa or noop")
    parser.add_argument("--conf", help="config file (TOML)")
    args = parser.parse_args(argv)
    return args.name, args.conf


def main(argv: list[str] | None = None) -> int:
    name, conf = parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        cfg = load_config(conf)
    except EcsmActorsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logs.setup(cfg.log, f"{name}-controller")
    stop = lifecycle.StopFlag().install()
    first: FirstList | None = None
    try:
        cfg.ensure_run_dir()
        with lifecycle.startup():
            module = controller_module(name)
            # The first LIST on its way while the reconciler and the controller are built
            # (a restart is ready once it is answered), when the module names its kind.
            kind = getattr(module, "KIND", None)
            first = list_ahead(kind, cfg) if isinstance(kind, str) else None
            spec = build_spec(name, module, cfg)
        if first is not None and first.kind != spec.kind:
            first.close()
            first = None
        # its leader elector checks the [controller] durations
        controller = Controller(spec, cfg, first_list=first)
    except (EcsmActorsError, OSError) as e:
        if first is not None:
            first.close()
        logger.error("controller %s cannot start: %s", name, e)
        return 2
    controller.start()
    # Armed once the informer is listing: a child forked by the zygote waits here for its
    # adoption by the supervisor, which has taken place meanwhile (see lifecycle).
    lifecycle.die_with_parent()
    healthy = True
    while not stop.wait(1.0):
        if not controller.alive():
            logger.error("%s: a runtime thread (informer or leader election) died; exiting "
                         "for a restart", spec.name)
            healthy = False
            break
    controller.stop(cfg.controller.drain_grace)
    return 0 if healthy else 1
