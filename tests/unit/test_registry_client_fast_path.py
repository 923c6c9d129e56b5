"""The registry client's per-request path: the frame it sends is the request envelope packed
whole, whatever the fields, and each thread keeps the replayed/stale flags of its own last
reply (the client's transport replaced by a fake: no sockets)."""

from __future__ import annotations

import random
import threading
from enum import StrEnum
from typing import Any

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.errors import Conflict
from ecsm_actors.protocol import Op
from ecsm_actors.registry import client as client_module
from ecsm_actors.registry.client import RegistryClient
from ecsm_actors.registry.sockets import Attempt


class Colour(StrEnum):
    RED = "red"


def random_value(rng: random.Random, depth: int = 0) -> Any:
    choices = [lambda: rng.randint(-2**63, 2**64 - 1), lambda: rng.random() * 1e6,
               lambda: "".join(rng.choice("aZ9-é.") for _ in range(rng.randint(0, 40))),
               lambda: rng.randbytes(rng.randint(0, 300)), lambda: rng.random() < 0.5,
               lambda: None, lambda: Colour.RED]
    if depth < 4:
        choices += [lambda: [random_value(rng, depth + 1) for _ in range(rng.randint(0, 8))],
                    lambda: {f"k{rng.randint(0, 99)}": random_value(rng, depth + 1)
                             for _ in range(rng.randint(0, 8))}]
    return rng.choice(choices)()


def test_a_request_frame_is_the_envelope_packed_whole_for_any_fields() -> None:
    rng = random.Random(16)
    names = ["object", "requestId", "kind", "namespace", "name", "limit", "continue",
             "resourceVersion", "writes", "atomic", "dryRun", "view", "events"]
    for _ in range(300):
        op = rng.choice(list(Op))
        request_id = rng.choice([rng.randint(0, 2**40), f"r-{rng.randint(0, 9999)}"])
        fields = {name: random_value(rng) for name in rng.sample(names, rng.randint(0, 12))}
        whole = msgpack.packb({"v": protocol.VERSION, "id": request_id, "op": str(op),
                               **fields}, use_bin_type=True)
        assert protocol.encode_request_of(op, request_id, fields) == whole
        assert protocol.encode_request(op, request_id, **fields) == whole


class FakeSocket:
    """Answers each exchange with the next reply the test queued, under the request's id."""

    handshakes = 1
    replies: list[dict[str, Any]] = []

    def __init__(self, *args: Any) -> None:
        pass

    def exchange(self, frame: bytes, **_: Any) -> Attempt:
        attempt = Attempt()
        doc = self.replies.pop(0)
        attempt.reply = protocol.pack({"v": 1, "id": msgpack.unpackb(frame)["id"], **doc})
        attempt.sent_at = attempt.replied_at = 1.0
        return attempt

    def close(self) -> None:
        pass


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> RegistryClient:
    monkeypatch.setattr(client_module, "RequestSocket", FakeSocket)
    monkeypatch.setattr(FakeSocket, "replies", [])
    return RegistryClient("ipc:///nowhere", context=object())  # type: ignore[arg-type]


def test_each_thread_keeps_the_flags_of_its_own_last_reply(client: RegistryClient) -> None:
    assert (client.last_replayed, client.last_stale) == (False, False)  # no reply yet
    FakeSocket.replies += [{"ok": True, "epoch": "e", "result": {"a": 1}, "replayed": True}]
    assert client.create({"a": 1}) == {"a": 1}
    assert (client.last_replayed, client.last_stale) == (True, False)
    seen: list[tuple[bool, bool]] = []
    other = threading.Thread(target=lambda: seen.append((client.last_replayed,
                                                         client.last_stale)))
    other.start()
    other.join(timeout=10)
    assert seen == [(False, False)]  # another thread: its own (no) last reply
    FakeSocket.replies += [{"ok": True, "epoch": "e", "result": {}, "stale": True}]
    client.get("ECSMService", "default", "web")
    assert (client.last_replayed, client.last_stale) == (False, True)
    FakeSocket.replies += [{"ok": False, "epoch": "e", "replayed": True,
                            "error": {"code": "Conflict", "message": "stale version"}}]
    with pytest.raises(Conflict, match="stale version") as raised:
        client.update({"a": 2})
    assert raised.value.replayed and (client.last_replayed, client.last_stale) == (True, False)
    assert client.epoch == "e" and client.rtt.srtt == 0.0  # each answer measured
