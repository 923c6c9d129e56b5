"""How ``ecsm-cli apply|create|delete -f`` cuts its writes into BATCH requests
(:mod:`ecsm_actors.cli.batching`), with a fake client: in order, within the count and the
frame size; a write too large goes alone and its refusal is its own; ``--atomic`` that
does not fit is refused before anything is sent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from ecsm_actors.cli import batching
from ecsm_actors.errors import BadRequest, DeadlineExceeded, Forbidden
from ecsm_actors.registry.results import BatchItem, BatchResult

pytestmark = pytest.mark.timeout(10)


def write(name: str, size: int = 10) -> dict[str, Any]:
    return {"op": "APPLY", "object": {"metadata": {"name": name}, "pad": "x" * size}}


class Client:
    def __init__(self, refuse_larger_than: int = 1 << 30) -> None:
        self.sent: list[list[str]] = []
        self.limit = refuse_larger_than

    def batch(self, writes: Sequence[Mapping[str, Any]], *, atomic: bool = False,
              request_id: str | None = None) -> BatchResult:
        names = [w["object"]["metadata"]["name"] for w in writes]
        self.sent.append(names)
        if any(len(w["object"]["pad"]) > self.limit for w in writes):
            raise BadRequest("frame of 5000000 bytes is larger than 4194304")
        return BatchResult(results=[BatchItem(ok=True, result=n) for n in names],
                           resource_version=1)


def test_writes_go_in_order_within_the_count_and_the_frame_size():
    client = Client()
    writes = [write(f"w{i}", 1000) for i in range(10)]
    limits = batching.Limits(max_writes=4, max_bytes=batching.FRAME_OVERHEAD + 2600)
    results = list(batching.send(client, writes, limits))
    assert [r.result for r in results] == [f"w{i}" for i in range(10)]
    assert client.sent == [["w0", "w1"], ["w2", "w3"], ["w4", "w5"], ["w6", "w7"],
                           ["w8", "w9"]]
    client.sent.clear()
    list(batching.send(client, writes, batching.Limits(max_writes=4, max_bytes=1 << 22)))
    assert [len(s) for s in client.sent] == [4, 4, 2]


def test_a_write_larger_than_a_frame_goes_alone_and_its_refusal_is_its_own():
    client = Client(refuse_larger_than=5000)
    writes = [write("a"), write("huge", 6000), write("b")]
    limits = batching.Limits(max_writes=10, max_bytes=batching.FRAME_OVERHEAD + 3000)
    results = list(batching.send(client, writes, limits))
    assert client.sent == [["a"], ["huge"], ["b"]]
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, BadRequest)


def test_atomic_writes_that_do_not_fit_one_request_are_refused_before_sending():
    client = Client()
    with pytest.raises(batching.TooLargeForAtomic, match="nothing was applied"):
        list(batching.send(client, [write("a"), write("b")],
                           batching.Limits(max_writes=1, max_bytes=1 << 22), atomic=True))
    assert client.sent == []


@pytest.mark.parametrize("error", [DeadlineExceeded("registry did not answer BATCH within "
                                                    "10.0s"),
                                   Forbidden("key ro has the role read: BATCH refused")])
def test_a_refusal_that_every_request_would_get_stops_the_command(error: Exception):
    class Refusing(Client):
        def batch(self, writes: Any, **kw: Any) -> BatchResult:
            self.sent.append([])
            raise error

    client = Refusing()
    with pytest.raises(type(error)):
        list(batching.send(client, [write("a"), write("b")],
                           batching.Limits(max_writes=1, max_bytes=1 << 22)))
    assert len(client.sent) == 1
