"""A dry run keeps nothing of what it staged: the store's list of the changes waiting
for its index of versions (:mod:`ecsm_actors.store.versions`) is that of the write
transaction under way, never grown by writes that are always aborted."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecsm_actors.protocol import Op
from ecsm_actors.store import Store
from ecsm_actors.store.records import Outcome, Write
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(30)


def test_dry_runs_leave_no_change_held_by_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "data", map_size=32 << 20, volatile_dir=tmp_path / "volatile")
    try:
        store.write(Op.CREATE, object=service("a"))
        held = len(store._changes)  # noqa: SLF001 - what the last commit handed over
        for i in range(50):
            result = store.dry_run(Write(op=Op.CREATE, fields={"object": service(f"d{i}")}))
            assert isinstance(result, Outcome)
        assert len(store._changes) <= held  # noqa: SLF001
        assert store.list_versions("ECSMService") == ([("default/a", 1)], 1)
    finally:
        store.close()
