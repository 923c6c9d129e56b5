"""The service Reconciler when ECSM's answers are wrong or in doubt: pages repeated, phantom
rows, empty 5xx bodies, ``data: null`` lists. No live ECSM service may be deleted on such
evidence, and no finalizer dropped while ECSM's answer is in doubt.

In-process simulator and fake registry (see :mod:`tests.unit.service_world`); the hostile
answers come from :class:`HostileTransport`, a wrapper around the world's transport.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from ecsm_actors.controllers.service.controller import FINALIZER
from ecsm_actors.runtime import Result
from tests.unit.service_world import World, esvc

pytestmark = pytest.mark.timeout(30)

#: How a hostile ECSM answers (``honest`` forwards everything unchanged).
class HostileTransport:
    """Forwards to the world's transport, then lies in the way ``mode`` says: ``honest``,
    ``empty503``, ``null_list``, ``deep_json``, ``repeat_pages`` or ``phantom``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.mode = "honest"
        self.sent: list[tuple[str, str]] = []
        self.phantoms: dict[str, dict[str, Any]] = {}

    def send(self, method: str, url: str, body: bytes | None,
             timeout: tuple[float | None, float | None]) -> tuple[int, bytes]:
        parts = urlsplit(url)
        self.sent.append((method, parts.path))
        is_list = method == "GET" and "pageNum=" in parts.query
        if self.mode == "empty503":
            return 503, b""
        if self.mode == "deep_json":
            return 200, b'{"status":200,"data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        if self.mode == "null_list" and is_list:
            return 200, b'{"status":200,"message":"success","data":null,"fieldErrors":null}'
        if self.mode == "repeat_pages" and is_list:
            query = [(k, "1" if k == "pageNum" else v) for k, v in parse_qsl(parts.query)]
            status, reply = self.inner.send(method, parts._replace(
                query=urlencode(query)).geturl(), body, timeout)
            doc = json.loads(reply)
            page = doc["data"]
            # ECSM ignores pageNum, and its total counts rows the first page never shows.
            page["total"] = 2 * len(page["list"]) if page["list"] else page["total"]
            return status, json.dumps(doc).encode()
        status, reply = self.inner.send(method, url, body, timeout)
        if self.mode == "phantom" and is_list and parts.path.endswith("/service"):
            # A row with another id and an older createdTime for every row ever listed;
            # it stays listed after the real service is gone.
            doc = json.loads(reply)
            page = doc["data"]
            for row in page["list"]:
                self.phantoms.setdefault(row["name"], {
                    **row, "id": f"phantom{row['id'][7:]}",
                    "createdTime": "2000-01-01 00:00:00"})
            name = dict(parse_qsl(parts.query)).get("name", "")
            phantoms = [row for key, row in self.phantoms.items() if name in key]
            page["list"] = phantoms + page["list"]
            page["total"] += len(phantoms)
            return status, json.dumps(doc).encode()
        return status, reply

    def close(self) -> None:
        pass

    def deletes(self) -> list[str]:
        return [path.rsplit("/", 1)[1] for method, path in self.sent if method == "DELETE"]


def hostile_world(**overrides: Any) -> tuple[World, HostileTransport]:
    w = World(overrides=overrides)
    hostile = HostileTransport(w.transport)
    w.ecsm.rest.transport = hostile
    return w, hostile


def settled_web(replicas: int = 2, **overrides: Any) -> tuple[World, HostileTransport, str]:
    """A world with ``web`` settled on one ECSM service (its id returned), and the
    hostile transport's record of requests cleared."""
    w, hostile = hostile_world(**overrides)
    w.apply(esvc("web", replicas=replicas))
    w.settle("web")
    [sid] = w.state.services
    hostile.sent.clear()
    return w, hostile, sid


def reconcile_a_few_times(w: World, name: str, passes: int = 5) -> None:
    for _ in range(passes):
        w.reconcile(name)
        w.advance(1.0)


@pytest.mark.parametrize("mode", ["empty503", "null_list", "deep_json"])
def test_a_deletion_keeps_its_finalizer_while_ecsm_answers_garbage_then_completes(
        mode: str) -> None:
    w, hostile, sid = settled_web()
    hostile.mode = mode
    w.registry.delete("ECSMService", "default", "web")
    reconcile_a_few_times(w, "web")
    assert w.get("web")["metadata"]["finalizers"] == [FINALIZER]
    assert list(w.state.services) == [sid]
    hostile.mode = "honest"
    w.reconcile("web")
    assert w.state.services == {}  # no orphan left on ECSM
    with pytest.raises(Exception, match="not found"):
        w.get("web")


# -- duplicates are judged by id and by certainty ------------------------------------------

@pytest.mark.parametrize("mode", ["repeat_pages", "phantom"])
def test_repeated_pages_or_a_phantom_row_never_delete_the_live_service(mode: str) -> None:
    w, hostile, sid = settled_web()
    hostile.mode = mode
    reconcile_a_few_times(w, "web", passes=8)
    assert hostile.deletes() == []
    assert list(w.state.services) == [sid]
    assert not [m for m, path in hostile.sent if m in ("POST", "PUT")]  # none re-created
    hostile.mode = "honest"
    w.settle("web")
    assert list(w.state.services) == [sid]
    assert w.get("web")["status"]["underlyingServiceIDs"] == [sid]


def test_a_phantom_row_is_ignored_with_a_warning_and_the_pass_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    w, hostile, sid = settled_web()
    hostile.mode = "phantom"
    with caplog.at_level(logging.WARNING, logger="ecsm_actors.controllers.service"):
        result = w.reconcile("web")
    assert result == Result()  # settled (left to the sweep), not in trouble
    assert [r.getMessage() for r in caplog.records if "phantom row ignored" in r.getMessage()]
    assert f"phantom{sid[7:]}" in caplog.text
    assert hostile.deletes() == []


def test_two_services_of_one_revision_confirmed_by_id_keep_the_oldest() -> None:
    w, hostile = hostile_world()
    w.apply(esvc("web", replicas=1))
    w.apply(esvc("twin", replicas=1))
    w.settle("web", "twin")
    web = next(s for s in w.state.services.values() if s.name.startswith("default.web."))
    twin = next(s for s in w.state.services.values() if s.name.startswith("default.twin."))
    twin.name, twin.created_at = web.name, web.created_at + 60  # a real, newer duplicate
    calls = len(hostile.sent)
    w.reconcile("web")
    assert hostile.deletes() == [twin.id]
    assert [(m, p.rsplit("/", 1)[1]) for m, p in hostile.sent[calls:calls + 3]] == \
        [("GET", "service"), ("GET", web.id), ("GET", twin.id)]
    assert web.id in w.state.services and twin.id not in w.state.services


def test_a_deletion_completes_when_ecsm_keeps_listing_a_phantom_row() -> None:
    w, hostile, sid = settled_web()
    hostile.mode = "phantom"
    w.registry.delete("ECSMService", "default", "web")
    w.reconcile("web")
    assert w.state.services == {}
    assert sid in hostile.deletes()
    with pytest.raises(Exception, match="not found"):
        w.get("web")


# -- garbage is a rate-limited warning, then the unavailable path --------------------------

def test_deep_json_is_one_warning_then_degraded_ecsm_unavailable_then_recovers(
        caplog: pytest.LogCaptureFixture) -> None:
    w, hostile, sid = settled_web(**{"service.unavailable_threshold": 3})
    hostile.mode = "deep_json"
    with caplog.at_level(logging.DEBUG, logger="ecsm_actors.controllers.service"):
        results = [w.reconcile("web") for _ in range(6)]
    assert all(r.requeue for r in results)  # retried with backoff, never raised
    unusable = [r for r in caplog.records if "ECSM answer unusable" in r.getMessage()]
    assert [r.levelno for r in unusable] == [logging.WARNING] + [logging.DEBUG] * 5
    assert "nested too deep" in unusable[0].getMessage()
    assert w.condition("web", "Degraded")["reason"] == "EcsmUnavailable"
    hostile.mode = "honest"
    w.settle("web")
    assert w.condition("web", "Degraded")["status"] == "False"
    assert list(w.state.services) == [sid]
