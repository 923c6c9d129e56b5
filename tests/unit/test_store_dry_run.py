"""A dry run answers as the write would, and leaves no trace: no object, no version, no
event, no requestId recorded; the wire refuses ``dryRun`` inside a BATCH's writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest, Invalid, NotFound
from ecsm_actors.protocol import Op
from ecsm_actors.store import Store, Write
from ecsm_actors.store.records import Outcome
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data", map_size=16 << 20, clock=lambda: 1_700_000_000.0)
    yield s
    s.close()


def test_a_dry_run_answers_as_the_write_would_and_stores_nothing(store: Store) -> None:
    store.write(Op.CREATE, object=service("db"))
    rv = store.resource_version
    created = store.dry_run(Write(op=Op.APPLY, fields={"object": service("web"),
                                                       "requestId": "r-1"}))
    configured = store.dry_run(Write(op=Op.APPLY, fields={"object": service("db",
                                                                             replicas=5)}))
    assert isinstance(created, Outcome) and created.result["action"] == "created"
    assert isinstance(configured, Outcome) and configured.result["action"] == "configured"
    assert created.events == () and configured.events == ()
    assert store.resource_version == rv
    assert store.watch_since(rv)[0] == []
    with pytest.raises(NotFound):
        store.get("ECSMService", "default", "web")
    assert store.get("ECSMService", "default", "db")["spec"]["deploymentStrategy"][
        "replicas"] == 2
    # r-1 was not recorded: the real write with that id applies.
    real = store.execute([Write(op=Op.APPLY, fields={"object": service("web"),
                                                     "requestId": "r-1"})])[0]
    assert isinstance(real, Outcome) and not real.replayed and real.result["action"] == "created"


def test_a_dry_run_of_an_invalid_object_is_refused(store: Store) -> None:
    refused = store.dry_run(Write(op=Op.CREATE, fields={"object": service("x", replicas=-1)}))
    assert isinstance(refused, Invalid)


def test_dry_run_is_a_field_of_the_batch_not_of_its_writes() -> None:
    frame = protocol.encode_request(Op.BATCH, 1, dryRun=True, writes=[
        {"op": "CREATE", "object": service("a")}])
    assert protocol.decode_request(frame).fields["dryRun"] is True
    nested = protocol.encode_request(Op.BATCH, 1, writes=[
        {"op": "CREATE", "object": service("a"), "dryRun": True}])
    with pytest.raises(BadRequest, match="dryRun"):
        protocol.decode_request(nested)
