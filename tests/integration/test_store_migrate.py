"""``ecsm-operator store migrate``: every object copied with its metadata between the
LMDB store of a run dir and a real etcd server, and the refusals that keep a store safe.

One etcd member shared by the module; each test has its own key prefix and run dirs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.cli.operator import main
from ecsm_actors.config import load_config
from ecsm_actors.errors import Unavailable
from ecsm_actors.etcd import EtcdClient
from ecsm_actors.store import Store
from ecsm_actors.store import migrate as migration
from ecsm_actors.store.etcd_store import EtcdStore
from ecsm_actors.supervisor.rundir import InstanceLock, pidfile
from tests.etcd_cluster import EtcdCluster
from tests.migrate_samples import every_object, populate, without_version

pytestmark = pytest.mark.timeout(60)


class Migrate:
    """``ecsm-operator --run-dir RUN store migrate ...`` in this process: (code, out, err)."""

    def __init__(self, server: EtcdCluster, prefix: str,
                 capsys: pytest.CaptureFixture[str]) -> None:
        self.endpoint = server.endpoints[0]
        self.prefix = prefix
        self.capsys = capsys

    def __call__(self, run_dir: Path, *args: str,
                 endpoint: str | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--run-dir", str(run_dir), "store", "migrate", *args,
                     "--etcd-endpoints", endpoint or self.endpoint,
                     "--etcd-prefix", self.prefix])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def migrate(etcd_server: EtcdCluster, etcd_prefix: str,
            capsys: pytest.CaptureFixture[str]) -> Migrate:
    return Migrate(etcd_server, etcd_prefix, capsys)


@pytest.fixture
def etcd(etcd_server: EtcdCluster) -> Iterator[EtcdClient]:
    with etcd_server.client() as client:
        yield client


def lmdb_store(run_dir: Path) -> Store:
    return Store(run_dir / "data", map_size=16 << 20)


def objects_in(run_dir: Path) -> dict[str, dict[str, Any]]:
    store = lmdb_store(run_dir)
    try:
        return every_object(store)
    finally:
        store.close()


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    """A run dir whose LMDB store holds the sample objects."""
    run_dir = tmp_path / "source"
    store = lmdb_store(run_dir)
    populate(store)
    store.close()
    return run_dir


def test_a_round_trip_lmdb_etcd_lmdb_keeps_every_object_identical_but_its_resource_version(
        migrate: Migrate, source_dir: Path, tmp_path: Path, etcd: EtcdClient) -> None:
    before = objects_in(source_dir)
    code, out, _ = migrate(source_dir, "--from", "lmdb", "--to", "etcd")
    assert code == 0
    assert "copied 3 objects (ECSMHpa 1, ECSMService 2) from lmdb" in out
    keys = etcd.range(f"{migrate.prefix}objects/".encode(),
                      f"{migrate.prefix}objects0".encode()).kvs
    assert sorted(kv.key.decode().removeprefix(f"{migrate.prefix}objects/") for kv in keys) \
        == sorted(before)
    served = EtcdStore(etcd, prefix=migrate.prefix)  # what a registry on etcd serves
    assert without_version(every_object(served)) == without_version(before)  # type: ignore[arg-type]
    assert {o["metadata"]["resourceVersion"] for o in every_object(served).values()} \
        == {kv.mod_revision for kv in keys}  # type: ignore[arg-type]

    back = tmp_path / "back"
    code, out, _ = migrate(back, "--from", "etcd", "--to", "lmdb")
    assert code == 0 and "copied 3 objects" in out
    after = objects_in(back)
    assert without_version(after) == without_version(before)
    assert after["ECSMService/prod/db"]["metadata"]["deletionTimestamp"]
    assert objects_in(source_dir) == before  # the source is only read


def test_a_target_that_holds_objects_is_refused_unless_overwritten_and_then_kept_aside(
        migrate: Migrate, source_dir: Path, tmp_path: Path) -> None:
    assert migrate(source_dir, "--from", "lmdb", "--to", "etcd")[0] == 0
    code, _, err = migrate(source_dir, "--from", "lmdb", "--to", "etcd")
    assert code == 1 and "already holds 3 objects: give --overwrite" in err
    code, out, _ = migrate(source_dir, "--from", "lmdb", "--to", "etcd", "--overwrite")
    assert code == 0 and "replaced 3 objects" in out

    other = tmp_path / "other"
    store = lmdb_store(other)
    populate(store)
    store.close()
    code, _, err = migrate(other, "--from", "etcd", "--to", "lmdb")
    assert code == 1 and "already holds 3 objects: give --overwrite" in err
    code, out, _ = migrate(other, "--from", "etcd", "--to", "lmdb", "--overwrite")
    assert code == 0 and "is kept in" in out
    assert [p.name.startswith("data.replaced-") for p in other.iterdir()
            if p.name != "data"] == [True]


def test_a_running_operator_or_leader_and_an_unreachable_etcd_are_refused_in_one_line(
        migrate: Migrate, source_dir: Path, etcd: EtcdClient) -> None:
    cfg = load_config(environ={}, overrides={"run.dir": str(source_dir)})
    cfg.ensure_run_dir()
    lock = InstanceLock(pidfile(cfg))
    lock.acquire()
    try:
        code, _, err = migrate(source_dir, "--from", "lmdb", "--to", "etcd")
    finally:
        lock.release()
    assert code == 1 and "is running (supervisor pid" in err and "ecsm-operator stop" in err

    code, _, err = migrate(source_dir, "--from", "lmdb", "--to", "etcd",
                           endpoint="http://127.0.0.1:1")
    assert code == 1 and err.startswith("error: etcd is unreachable") and err.count("\n") == 1

    etcd.put(f"{migrate.prefix}leases/ECSMService".encode(), b"host-b:/run:42")
    code, _, err = migrate(source_dir, "--from", "lmdb", "--to", "etcd")
    assert code == 1 and "an operator runs on" in err and "host-b:/run:42" in err
    assert etcd.range(f"{migrate.prefix}objects/".encode(),
                      f"{migrate.prefix}objects0".encode(), count_only=True).count == 0


class FailingAfter:
    """An etcd client whose transactions fail after ``ok`` of them, as a lost cluster."""

    def __init__(self, client: EtcdClient, ok: int) -> None:
        self._client = client
        self._ok = ok

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def txn(self, *args: Any, **kwargs: Any) -> Any:
        if self._ok == 0:
            raise Unavailable("etcd store unavailable (http://127.0.0.1:1): connection refused")
        self._ok -= 1
        return self._client.txn(*args, **kwargs)


def test_an_interrupted_migration_leaves_the_source_intact_and_says_how_to_start_over(
        migrate: Migrate, source_dir: Path, tmp_path: Path, etcd: EtcdClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = objects_in(source_dir)
    cfg = load_config(environ={}, overrides={
        "run.dir": str(source_dir), "store.etcd_endpoints": migrate.endpoint,
        "store.etcd_prefix": migrate.prefix})
    monkeypatch.setattr(migration, "TXN_OPS", 1)
    with pytest.raises(migration.MigrationError) as refused:
        migration.migrate(cfg, "lmdb", "etcd", etcd=FailingAfter(etcd, ok=1))  # type: ignore[arg-type]
    message = str(refused.value)
    assert "interrupted after 1 of 3 objects" in message and "the source is intact" in message
    assert "ecsm-operator store migrate --from lmdb --to etcd --overwrite" in message
    assert objects_in(source_dir) == before

    code, _, err = migrate(tmp_path / "reader", "--from", "etcd", "--to", "lmdb")
    assert code == 1 and "holds an interrupted migration" in err
    code, _, err = migrate(source_dir, "--from", "lmdb", "--to", "etcd")
    assert code == 1 and "already holds an interrupted migration" in err
    assert migrate(source_dir, "--from", "lmdb", "--to", "etcd", "--overwrite")[0] == 0
    assert migrate(tmp_path / "reader", "--from", "etcd", "--to", "lmdb")[0] == 0
    assert without_version(objects_in(tmp_path / "reader")) == without_version(before)
