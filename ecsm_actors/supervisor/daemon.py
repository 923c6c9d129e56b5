"""``python -m ecsm_actors supervisor``: the supervisor process main.

Runs as the daemon (``ecsm-operator run`` in the foreground, ``ecsm-operator start``
detached). Steps: load the configuration, create the run dir (0700), take the
single-instance lock (``<pid dir>/supervisor.pid``), clean what a dead predecessor left
(orphans, child pidfiles, sockets, a dead simulator's address file), build the child
table (built-in, or ``--children FILE``), then hand over to the event loop until SIGTERM
or ``ecsm-operator stop``. Exit codes: 0 after a graceful stop, 1 when it cannot start
(another supervisor runs, bad configuration), 70 when the loop gave up.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from ecsm_actors import logs
from ecsm_actors.config import Config, check_served_endpoints, load_config
from ecsm_actors.errors import EcsmActorsError
from ecsm_actors.supervisor.applier import apply_objects, load_directory
from ecsm_actors.supervisor.children import builtin_children, load_children
from ecsm_actors.supervisor.loop import Supervisor
from ecsm_actors.supervisor.rundir import InstanceLock, clean_stale, pidfile

logger = logging.getLogger(__name__)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ecsm_actors supervisor",
                                     description="Run and supervise every ecsm-actors process.")
    parser.add_argument("--conf", help="config file (TOML)")
    parser.add_argument("--simulate", action="store_true",
                        help="start an ECSM simulator first and point the controllers at it")
    parser.add_argument("--apply", metavar="DIR",
                        help="apply every manifest in DIR once the registry is ready")
    parser.add_argument("--children", metavar="FILE",
                        help="child table (TOML/JSON) replacing the built-in one")
    return parser.parse_args(argv)


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.conf, overrides={"supervisor.children_file": args.children})
    check_served_endpoints(cfg)  # the registry it starts would refuse them anyway
    return cfg


def _applier(cfg: Config, directory: Path) -> Callable[[], None]:
    """Read the manifests now (a bad one stops the start); apply them when called."""
    objects = load_directory(directory)

    def apply() -> None:
        apply_objects(cfg, objects)

    return apply


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        cfg = _config(args)
    except EcsmActorsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    logs.setup(cfg.log, "supervisor")
    try:
        cfg.ensure_run_dir()
        lock = InstanceLock(pidfile(cfg))
        lock.acquire()
    except (EcsmActorsError, OSError) as e:
        logger.error("cannot start: %s", e)
        return 1
    try:
        clean_stale(cfg, lock)
        cfg = _config(args)  # again: a dead simulator's address no longer leaks in
        if cfg.supervisor.children_file:
            specs = load_children(cfg.supervisor.children_file, cfg)
        else:
            specs = builtin_children(cfg, simulate=args.simulate)
        on_registry_ready = _applier(cfg, Path(args.apply)) if args.apply else None
        return Supervisor(cfg, specs, on_registry_ready=on_registry_ready).run()
    except EcsmActorsError as e:
        logger.error("cannot start: %s", e)
        return 1
    finally:
        lock.release()
