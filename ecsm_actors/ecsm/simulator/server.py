"""``python -m ecsm_actors simulator``: the ECSM simulator process main.

Usage: ``python -m ecsm_actors simulator [--conf FILE] [--port N] [--nodes N]
[--state FILE] [--node-memory 1Gi]``. Serves the ECSM REST API (ecsm-api.md) and the admin API on
127.0.0.1 (port 0 picks a free port), then records its address in
``cfg.ecsm_address_file`` as JSON ``{host, port, url, pid}`` (atomic write) so every
process and ecsm-cli of the run dir finds it. Reports liveness as ``simulator``.
With ``--state`` the state is loaded at start and persisted after each mutation
(debounced) and on SIGTERM. SIGTERM/SIGINT → clean exit 0; the address file is removed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import zmq

from ecsm_actors import lifecycle, logs
from ecsm_actors.config import Config, load_config
from ecsm_actors.ecsm.simulator import persistence
from ecsm_actors.ecsm.simulator.app import Simulator
from ecsm_actors.ecsm.simulator.httpd import SimServer
from ecsm_actors.ecsm.simulator.state import State
from ecsm_actors.errors import ConfigError
from ecsm_actors.liveness import LivenessReporter

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ecsm_actors simulator",
                                     description="ECSM simulator (HTTP on 127.0.0.1)")
    parser.add_argument("--conf", help="config file (TOML)")
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (0 = a free port)")
    parser.add_argument("--nodes", type=int, help="number of seeded nodes")
    parser.add_argument("--state", help="persist the state to this JSON file")
    parser.add_argument("--start-delay", type=float,
                        help="seconds a container stays 'created' before 'running'")
    parser.add_argument("--node-memory", metavar="SIZE",
                        help="memory containers may reserve on each node (e.g. 1Gi)")
    return parser.parse_args(argv)


def build_state(cfg: Config) -> State:
    settings = cfg.simulator
    if settings.state_file:
        doc = persistence.load(Path(settings.state_file))
        if doc is not None:
            state = State.restore(doc, start_delay=settings.start_delay,
                                  node_memory=settings.node_memory,
                                  default_memory_limit=settings.default_memory_limit)
            logger.info("state restored from %s: %d services, %d containers",
                        settings.state_file, len(state.services), len(state.containers))
            return state
    return State.seeded(settings.nodes, start_delay=settings.start_delay,
                        node_memory=settings.node_memory,
                        default_memory_limit=settings.default_memory_limit)


def write_address(cfg: Config, port: int) -> Path:
    path = cfg.ecsm_address_file
    doc = {"host": HOST, "port": port, "url": f"http://{HOST}:{port}", "pid": os.getpid()}
    persistence.write_atomic(path, json.dumps(doc).encode())
    return path


def remove_address(path: Path) -> None:
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def main(argv: list[str]) -> int:
    lifecycle.die_with_parent()
    args = parse_args(argv)
    try:
        cfg = load_config(args.conf, overrides={
            "simulator.port": args.port, "simulator.nodes": args.nodes,
            "simulator.state_file": args.state, "simulator.start_delay": args.start_delay,
            "simulator.node_memory": args.node_memory})
    except ConfigError as e:
        print(f"error: {e}", flush=True)
        return 2
    logs.setup(cfg.log, "simulator")
    stop = lifecycle.StopFlag().install()
    cfg.ensure_run_dir()
    try:
        state = build_state(cfg)
    except ValueError as e:
        logger.error("%s (fix or remove the file; nothing was overwritten)", e)
        return 1
    persister = None
    if cfg.simulator.state_file:
        persister = persistence.Persister(Path(cfg.simulator.state_file), state).start()
    app = Simulator(state)
    try:
        server = SimServer((HOST, cfg.simulator.port), app)
    except OSError as e:
        logger.error("cannot listen on %s:%s: %s", HOST, cfg.simulator.port, e.strerror)
        return 1
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="http", daemon=True)
    thread.start()
    address_file = write_address(cfg, port)
    context: zmq.Context[Any] = zmq.Context()
    reporter = LivenessReporter(context, cfg.heartbeat_endpoint, "simulator",
                                cfg.controller.heartbeat_interval,
                                lambda: {"stats": app.stats()}).start()
    logger.info("ECSM simulator listening on http://%s:%d (%d nodes of %d MiB, %d images)",
                HOST, port, len(state.nodes), cfg.simulator.node_memory >> 20,
                len(state.images))
    try:
        while not stop.wait(1.0):
            pass
    finally:
        logger.info("stopping (signal %s)", stop.signum)
        server.shutdown()
        server.server_close()
        remove_address(address_file)
        if persister is not None:
            persister.stop()
        reporter.close()
        context.term()
    return 0
