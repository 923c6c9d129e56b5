"""The service controller behind a hostile HTTP front of ECSM (:mod:`tests.hostile_front`):
real simulator, registry and controller processes, real sockets. Repeated pages and
phantom rows must never delete a live ECSM service; while ECSM answers garbage (empty
503s, ``data: null`` lists, deep JSON, a non-ASCII status line) a deleted ECSMService
keeps its finalizer; once ECSM is honest again the deletion completes with no orphan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import service_harness as h
from tests.helpers import Processes, wait_until
from tests.hostile_front import HostileFront

pytestmark = pytest.mark.timeout(60)

SERVICES = "/api/v1/service"


@pytest.fixture
def stack(processes: Processes) -> Iterator[tuple[h.Stack, HostileFront]]:
    """Simulator and registry; the controller talks to ECSM only through the front."""
    stack = h.start_stack(processes, nodes=3, start_delay=0.1, controller=False)
    sim = urlsplit(stack.admin.base_url)
    assert sim.hostname and sim.port
    front = HostileFront(sim.hostname, sim.port)
    stack.start_controller(ECSM_ACTORS_ECSM_HOST="127.0.0.1",
                           ECSM_ACTORS_ECSM_PORT=str(front.port),
                           ECSM_ACTORS_SERVICE_UNAVAILABLE_THRESHOLD="2")
    try:
        yield stack, front
    finally:
        front.close()
        stack.close()


def ids(stack: h.Stack) -> dict[str, str]:
    return {name: svc["id"] for name, svc in h.ecsm(stack.admin, "default.").items()}


def controller_log(processes: Processes) -> str:
    return "\n".join(p.read_text(errors="replace")
                     for p in (processes.run_dir / "test-logs").glob("controller-service*"))


def test_repeated_pages_and_phantom_rows_never_delete_a_live_service(
        stack: tuple[h.Stack, HostileFront], processes: Processes, run_dir: Path) -> None:
    s, front = stack
    s.registry.apply(h.service("web", replicas=2))
    s.registry.apply(h.service("db", image="db@1.0", replicas=1))
    wait_until(lambda: h.settled(s.registry, "web") and h.settled(s.registry, "db"),
               timeout=15, what="both settled through the honest front")
    live = ids(s)
    assert len(live) == 2
    for mode in ("repeat_pages", "phantom"):
        front.mode = mode
        wait_until(lambda m=mode: front.count("GET", SERVICES, mode=m) >= 8, timeout=10,
                   what=f"the controller listing through {mode}")
    front.mode = "honest"
    assert front.count("DELETE") == 0  # nothing deleted, nothing re-created:
    assert front.count("POST", mode="repeat_pages") == front.count("POST", mode="phantom") == 0
    assert ids(s) == live
    wait_until(lambda: h.settled(s.registry, "web") and h.settled(s.registry, "db"),
               timeout=10, what="both settled again")
    assert ids(s) == live
    assert h.get(s.registry, "web")["status"]["underlyingServiceIDs"] == \
        [live[n] for n in live if n.startswith("default.web.")]
    assert "Traceback" not in controller_log(processes)


def test_a_deletion_waits_out_garbage_answers_then_leaves_no_orphan(
        stack: tuple[h.Stack, HostileFront], processes: Processes, run_dir: Path) -> None:
    s, front = stack
    s.registry.apply(h.service("web", replicas=2))
    wait_until(lambda: h.settled(s.registry, "web"), timeout=15, what="web settled")
    [sid] = ids(s).values()
    garbage = ("empty503", "null_list", "deep_json", "bad_status_line")
    front.mode = garbage[0]
    s.registry.delete("ECSMService", "default", "web")
    for mode in garbage:
        front.mode = mode
        wait_until(lambda m=mode: front.count(mode=m) >= 3, timeout=10,
                   what=f"the controller retrying through {mode}")
        assert h.get(s.registry, "web")["metadata"]["finalizers"], mode
        assert list(ids(s).values()) == [sid], mode
    assert h.condition(s.registry, "web", "Degraded") == ("True", "EcsmUnavailable")
    assert front.count("DELETE") == 0
    front.mode = "honest"
    wait_until(lambda: h.gone(s.registry, "web"), timeout=10, what="web deleted")
    assert ids(s) == {}  # no orphan on ECSM
    assert front.paths("DELETE") == [f"{SERVICES}/{sid}"]
    log = controller_log(processes)
    assert "Traceback" not in log
    unusable = [line for line in log.splitlines()
                if " WARNING " in line and "ECSM answer unusable" in line]
    assert 1 <= len(unusable) <= 3, unusable  # one per cause, not one per retry
