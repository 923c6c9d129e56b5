"""A GET is answered with the object's stored bytes: the same reply, byte for byte, as
the object decoded and encoded again (which the registry no longer does)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsm_actors import protocol
from ecsm_actors.errors import NotFound
from ecsm_actors.protocol import Op
from ecsm_actors.store import Store
from tests.registry_samples import service


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data", map_size=32 << 20)
    yield s
    s.close()


def test_the_stored_bytes_make_the_same_get_reply_as_the_decoded_object(store: Store) -> None:
    store.write(Op.CREATE, object=service("web"))
    obj = store.get("ECSMService", "default", "web")
    raw = store.get_raw("ECSMService", "default", "web")
    assert (protocol.encode_reply_encoded(7, store.epoch, raw)
            == protocol.encode_reply(7, store.epoch, obj))
    assert protocol.decode_reply(protocol.encode_reply_encoded(7, store.epoch, raw)).result == obj


def test_a_missing_object_is_not_found_in_its_stored_bytes_either(store: Store) -> None:
    with pytest.raises(NotFound, match="web"):
        store.get_raw("ECSMService", "default", "web")


def test_each_created_object_gets_a_random_version_4_uid(store: Store) -> None:
    uids = [store.write(Op.CREATE, object=service(f"web-{i}"))["metadata"]["uid"]
            for i in range(200)]
    assert len(set(uids)) == len(uids)
    for uid in uids:
        parsed = uuid.UUID(uid)
        assert str(parsed) == uid and parsed.version == 4 and parsed.variant == uuid.RFC_4122
