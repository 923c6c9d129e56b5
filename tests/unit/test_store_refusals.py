"""Refused writes: what the store answers, and that a refusal costs nothing once answered."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsm_actors.errors import Conflict, Invalid
from ecsm_actors.protocol import Op
from ecsm_actors.store import Store, Write
from tests.registry_samples import service, with_changes


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data", map_size=16 << 20, clock=lambda: 1_700_000_000.0)
    yield s
    s.close()


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def test_a_refused_write_is_freed_as_soon_as_it_is_answered(
        store: Store, no_cyclic_gc: None) -> None:
    """A refusal kept with its traceback held the request (up to a frame of 4 MiB, tens
    of MB decoded) in a reference cycle until the next full collection: 40 such writes
    took the registry to 850 MB."""
    first = store.write(Op.CREATE, object=service("web"))
    store.write(Op.UPDATE, object=with_changes(first, spec__priority=1))
    huge = service("huge")
    huge["spec"]["junk"] = {f"f{i}": i for i in range(1000)}
    results = store.execute([
        Write(op=Op.CREATE, fields={"object": huge}),
        Write(op=Op.UPDATE, fields={"object": with_changes(first, spec__priority=2)}),
    ])
    assert isinstance(results[0], Invalid) and isinstance(results[1], Conflict)
    del results
    assert gc.collect() == 0


