"""The store lets go of memory when idle (Store.release_pages): the pages a large write
transaction dirtied go with its environment, opened again, and the store serves on."""

from __future__ import annotations

from pathlib import Path

from ecsm_actors.protocol import Op
from ecsm_actors.store import Outcome, Store, Write
from ecsm_actors.store.lmdb_store import REOPEN_AFTER
from tests.registry_samples import service

NOW = 1_700_000_000.0


def creates(names: list[str]) -> list[Write]:
    return [Write(op=Op.CREATE, fields={"object": service(n), "requestId": f"id-{n}"})
            for n in names]


def test_a_large_transaction_has_the_environment_opened_again_and_the_store_serves_on(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "data", map_size=64 << 20, request_window=REOPEN_AFTER * 4,
                  clock=lambda: NOW)
    try:
        names = [f"s{i}" for i in range(REOPEN_AFTER + 1)]
        store.execute(creates(names))
        before = store._env  # noqa: SLF001 - which environment is the point
        store.release_pages()
        assert store._env is not before  # noqa: SLF001
        again = store.execute(creates(["s0"]))[0]
        assert isinstance(again, Outcome) and again.replayed  # the window, still there
        store.write(Op.UPDATE, object=service("s1", replicas=5))
        events, rv = store.watch_since(0)
        assert [e.seq for e in events] == list(range(1, len(names) + 2)) and rv == len(names) + 1
        assert store.get("ECSMService", "default", "s1")["spec"]["deploymentStrategy"][
            "replicas"] == 5
        store.release_pages()  # small transactions since: the environment stays
        after = store._env  # noqa: SLF001
        store.release_pages()
        assert store._env is after  # noqa: SLF001
    finally:
        store.close()


def test_small_transactions_keep_the_environment(tmp_path: Path) -> None:
    store = Store(tmp_path / "data", map_size=64 << 20, clock=lambda: NOW)
    try:
        for name in ("a", "b", "c"):
            store.execute(creates([name]))
        env = store._env  # noqa: SLF001
        store.release_pages()
        assert store._env is env  # noqa: SLF001
        assert len(store.list_raw("ECSMService").decode()) == 3
    finally:
        store.close()
