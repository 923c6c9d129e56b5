"""``ecsm-operator metrics`` and ``supervisor.metrics_endpoint``: every process's counters
and histograms in the Prometheus text format, as a scraper parses them.

Real processes: the built-in child table over the simulator, a few registry writes for
the controllers to reconcile, then the CLI's output and a scrape on 127.0.0.1.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ecsm_actors.config import load_config
from ecsm_actors.registry.client import RegistryClient
from ecsm_actors.supervisor.client import SupervisorClient
from tests.helpers import Processes, wait_until
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(60)

OPERATOR = str(Path(sys.executable).parent / "ecsm-operator")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text by (name, labels): parsing it is the check."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, Any], float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def test_metrics_show_registry_controller_and_supervisor_figures_on_the_cli_and_over_http(
        processes: Processes, run_dir: Path) -> None:
    port = free_port()
    processes.spawn("supervisor", "--simulate", log_name="supervisor", env={
        "ECSM_ACTORS_SUPERVISOR_METRICS_ENDPOINT": f"127.0.0.1:{port}",
        "ECSM_ACTORS_CONTROLLER_HEARTBEAT_INTERVAL": "0.2"})
    cfg = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(run_dir)})
    supervisor = SupervisorClient(cfg, timeout=5)
    wait_until(lambda: supervisor.status()["ready"], timeout=30, what="every child ready")
    with RegistryClient(cfg.registry_endpoint) as registry:
        for name in ("web", "api", "db"):
            registry.create(service(name, replicas=1))

    def reconciled() -> bool:
        stats = supervisor.stats("service-controller")["service-controller"]["liveness"]
        return bool(stats and stats["stats"]["reconciles"] >= 3)

    wait_until(reconciled, timeout=20, what="the three services reconciled and reported")

    def scraped_by_cli() -> dict[tuple[str, Any], float]:
        out = subprocess.run([OPERATOR, "metrics"], env=processes.env(), capture_output=True,
                             text=True, timeout=20, check=True).stdout
        found = samples(out)
        # the registry reports every second: wait for the report after the writes
        return found if found.get(("ecsm_actors_registry_commits_total",
                                   (("child", "registry"),)), 0) >= 1 else {}

    cli = wait_until(scraped_by_cli, timeout=10, what="the registry's report of the writes")
    assert value(cli, "ecsm_actors_registry_requests_total", child="registry") >= 3
    assert value(cli, "ecsm_actors_registry_commits_total", child="registry") >= 1
    assert value(cli, "ecsm_actors_registry_batch_size_count", child="registry") >= 1
    assert value(cli, "ecsm_actors_registry_wal_checkpoints", child="registry") >= 1
    assert value(cli, "ecsm_actors_registry_wal_bytes", child="registry") >= 0
    assert value(cli, "ecsm_actors_controller_reconciles_total",
                 child="service-controller") >= 3
    assert value(cli, "ecsm_actors_controller_latency_seconds_count",
                 child="service-controller") >= 3
    assert value(cli, "ecsm_actors_controller_latency_seconds_bucket",
                 child="service-controller", le="+Inf") >= 3
    assert value(cli, "ecsm_actors_child_up", child="hpa-controller") == 1.0
    assert value(cli, "ecsm_actors_child_restarts_total", child="registry", reason="exit") == 0
    assert value(cli, "ecsm_actors_child_rss_bytes", child="registry") > 1 << 20

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=")
        scraped = samples(reply.read().decode())
    assert {k[0] for k in scraped} == {k[0] for k in cli}
    assert value(scraped, "ecsm_actors_controller_reconciles_total",
                 child="service-controller") >= 3
