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
from tests.unit.service_world import World, esvc

pytestmark = pytest.mark.timeout(30)

#: How a hostile ECSM answers (``honest`` forwards everything unchanged).
MODES = ("honest", "empty503", "null_list", "repeat_pages", "phantom")


class HostileTransport:
    """Forwards to the world's transport, then lies in the way ``mode`` says."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.mode = "honest"
        self.sent: list[tuple[str, str]] = []

    def send(self, method: str, url: str, body: bytes | None,
             timeout: tuple[float | None, float | None]) -> tuple[int, bytes]:
        parts = urlsplit(url)
        self.sent.append((method, parts.path))
        is_list = method == "GET" and "pageNum=" in parts.query
        if self.mode == "empty503":
            return 503, b""
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
            doc = json.loads(reply)
            page = doc["data"]
            phantoms = [{**row, "id": f"phantom{row['id'][7:]}",
                         "createdTime": "2000-01-01 00:00:00"} for row in page["list"]]
            page["list"] = phantoms + page["list"]
            page["total"] += len(phantoms)
            return status, json.dumps(doc).encode()
        return status, reply

    def close(self) -> None:
        pass

    def deletes(self) -> list[str]:
        return [path.rsplit("/", 1)[1] for method, path in self.sent if method == "DELETE"]


def hostile_world() -> tuple[World, HostileTransport]:
    w = World()
    hostile = HostileTransport(w.transport)
    w.ecsm.rest.transport = hostile
    return w, hostile


def reconcile_a_few_times(w: World, name: str, passes: int = 5) -> None:
    for _ in range(passes):
        w.reconcile(name)
        w.advance(1.0)


@pytest.mark.parametrize("mode", ["empty503", "null_list"])
def test_a_deletion_keeps_its_finalizer_while_ecsm_answers_garbage_then_completes(
        mode: str) -> None:
    w, hostile = hostile_world()
    w.apply(esvc("web", replicas=2))
    w.settle("web")
    [sid] = w.state.services
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
