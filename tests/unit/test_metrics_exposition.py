"""The exposition of the operator's figures (supervisor/metrics.py): what a Prometheus
scraper parses out of a supervisor snapshot; restarts counted by cause; the metrics
endpoint's address rules. No sockets, no processes."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ecsm_actors.errors import ConfigError
from ecsm_actors.histogram import Histogram
from ecsm_actors.runtime.metrics import ControllerMetrics
from ecsm_actors.supervisor.machine import ChildMachine, ExitStatus, Spawn, restart_cause
from ecsm_actors.supervisor.metrics import render
from ecsm_actors.supervisor.metrics_http import parse_endpoint
from ecsm_actors.supervisor.spec import ChildSpec


def entry(stats: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"state": "RUNNING", "pid": 7, "rss": 30 << 20, "anonymousRss": 20 << 20,
            "cpuSeconds": 1.25, "restarts": 0, "restartCauses": {},
            "liveness": {"ts": 1.0, "queueDepth": 3, "oldestInflightAge": 0.5,
                         "lastCompleted": 2.0, "stats": stats}, **extra}


def parsed(text: bytes) -> dict[str, tuple[str, dict[tuple[str, tuple[Any, ...]], float]]]:
    return {f.name: (f.type, {(s.name, tuple(sorted(s.labels.items()))): s.value
                              for s in f.samples})
            for f in text_string_to_metric_families(text.decode())}


def test_a_snapshot_becomes_typed_families_a_scraper_parses() -> None:
    batches = Histogram()
    for size in (1, 1, 7):
        batches.observe(size)
    latency = ControllerMetrics()
    latency.observe(0.02)
    latency.observe(0.3, errors=1)
    stats = {
        "registry": entry({"requests": 12, "commits": 2, "writes": 9, "maxBatch": 7,
                           "badRequests": 1, "epoch": "abc", "batchSize": batches.to_dict()},
                          restarts=2, restartCauses={"memory": 1, "exit": 1}),
        "service-controller": entry({**latency.snapshot(), "synced": True,
                                     "retry_budget": {"tokens": 99.5},
                                     "informer": {"events": 4, "replays": 1},
                                     "events": {"recorded": 5, "droppedFull": 2}}),
        "zygote": {"state": "BACKOFF", "pid": None, "rss": None, "liveness": None},
    }
    families = parsed(render(stats, {"refused": {"badReports": 2}}))

    kind, samples = families["ecsm_actors_registry_requests"]
    assert kind == "counter"
    assert samples[("ecsm_actors_registry_requests_total", (("child", "registry"),))] == 12
    assert families["ecsm_actors_registry_max_batch"][0] == "gauge"
    assert "ecsm_actors_registry_epoch" not in families  # strings are no figures
    kind, samples = families["ecsm_actors_registry_batch_size"]
    assert kind == "histogram"
    assert samples[("ecsm_actors_registry_batch_size_bucket",
                    (("child", "registry"), ("le", "1.0")))] == 2
    assert samples[("ecsm_actors_registry_batch_size_bucket",
                    (("child", "registry"), ("le", "+Inf")))] == 3
    assert samples[("ecsm_actors_registry_batch_size_sum", (("child", "registry"),))] == 9
    kind, samples = families["ecsm_actors_controller_latency_seconds"]
    assert kind == "histogram"
    assert samples[("ecsm_actors_controller_latency_seconds_count",
                    (("child", "service-controller"),))] == 2
    assert families["ecsm_actors_controller_errors"][1][
        ("ecsm_actors_controller_errors_total", (("child", "service-controller"),))] == 1
    assert families["ecsm_actors_controller_informer_replays"][0] == "counter"
    assert families["ecsm_actors_controller_retry_budget_tokens"][0] == "gauge"
    assert families["ecsm_actors_controller_events_dropped_full"][1][
        ("ecsm_actors_controller_events_dropped_full_total",
         (("child", "service-controller"),))] == 2
    restarts = families["ecsm_actors_child_restarts"][1]
    assert restarts[("ecsm_actors_child_restarts_total",
                     (("child", "registry"), ("reason", "memory")))] == 1
    up = families["ecsm_actors_child_up"][1]
    assert up[("ecsm_actors_child_up", (("child", "zygote"),))] == 0
    assert families["ecsm_actors_supervisor_refused"][1][
        ("ecsm_actors_supervisor_refused_total", (("kind", "bad_reports"),))] == 2


def test_restarts_are_counted_by_the_cause_of_the_exit_that_calls_for_them() -> None:
    now = [1000.0]
    m = ChildMachine(ChildSpec(name="c", argv=("x",), startsecs=1.0, backoff_base=0.0,
                               backoff_jitter=0.0, flap_restarts=100),
                     clock=lambda: now[0], rng=lambda: 0.0)
    m.start()
    m.spawned(1)
    m.ready()
    now[0] += 5
    assert m.exited(ExitStatus(code=1)) == [Spawn()]
    m.spawned(2)
    m.ready()
    now[0] += 5
    m.kill("RSS (anonymous) 300.0 MiB above the limit of 256.0 MiB")
    m.exited(ExitStatus(signal=signal.SIGKILL))
    m.spawned(3)
    m.ready()
    m.restart()
    assert m.restart_causes == {"exit": 1, "memory": 1, "requested": 1}


@pytest.mark.parametrize(("why", "killed", "cause"), [
    ("exited with 1", False, "exit"),
    ("no liveness report for 10.0s (deadline 10s)", True, "heartbeat"),
    ("reconcile in flight for 130.0s (limit 120s)", True, "stuck"),
    ("not ready 60s after start", True, "readiness"),
    ("something else", True, "killed"),
])
def test_a_restart_cause_is_a_short_label(why: str, killed: bool, cause: str) -> None:
    assert restart_cause(why, killed=killed) == cause


@pytest.mark.parametrize("endpoint", ["127.0.0.1:9464", "localhost:9464", "[::1]:9464"])
def test_the_metrics_endpoint_may_listen_on_loopback(endpoint: str) -> None:
    assert parse_endpoint(endpoint, allow_remote=False)[1] == 9464


@pytest.mark.parametrize("endpoint", ["0.0.0.0:9464", "10.1.2.3:9464", "device:9464"])
def test_a_non_loopback_metrics_endpoint_is_refused_unless_allowed(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="metrics_allow_remote"):
        parse_endpoint(endpoint, allow_remote=False)
    assert parse_endpoint(endpoint, allow_remote=True)[1] == 9464


@pytest.mark.parametrize("endpoint", ["9464", "127.0.0.1", "127.0.0.1:http", ":9464",
                                      "127.0.0.1:70000"])
def test_a_malformed_metrics_endpoint_says_what_is_expected(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        parse_endpoint(endpoint, allow_remote=False)
