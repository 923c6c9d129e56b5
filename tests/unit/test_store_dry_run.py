"""The wire refuses ``dryRun`` inside a BATCH's writes (what a dry run answers, on both
store backends: tests/integration/test_store_backends.py)."""

from __future__ import annotations

import pytest

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest
from ecsm_actors.protocol import Op
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(30)


def test_dry_run_is_a_field_of_the_batch_not_of_its_writes() -> None:
    frame = protocol.encode_request(Op.BATCH, 1, dryRun=True, writes=[
        {"op": "CREATE", "object": service("a")}])
    assert protocol.decode_request(frame).fields["dryRun"] is True
    nested = protocol.encode_request(Op.BATCH, 1, writes=[
        {"op": "CREATE", "object": service("a"), "dryRun": True}])
    with pytest.raises(BadRequest, match="dryRun"):
        protocol.decode_request(nested)
