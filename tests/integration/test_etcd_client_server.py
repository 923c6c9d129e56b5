"""The etcd client against a real etcd 3.5 server: key-value and txn semantics, leases,
watches, compaction, a full database. One server shared by the module; each test under
its own key prefix."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsm_actors.errors import DeadlineExceeded, Expired, StoreFull, Unavailable
from ecsm_actors.etcd import Compare, EtcdClient, RangeResult, TxnOp, WatchEvent, prefix_end
from tests.etcd_cluster import EtcdCluster, make_tls
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def client(etcd_server: EtcdCluster) -> Iterator[EtcdClient]:
    with etcd_server.client() as c:
        yield c


def test_a_create_is_a_txn_on_mod_revision_zero_and_only_the_first_one_wins(
        client: EtcdClient, etcd_prefix: str) -> None:
    key = f"{etcd_prefix}obj".encode()
    first = client.txn([Compare.mod_revision(key, "=", 0)], [TxnOp.put(key, b"one")],
                       [TxnOp.range(key)])
    second = client.txn([Compare.mod_revision(key, "=", 0)], [TxnOp.put(key, b"two")],
                        [TxnOp.range(key)])
    assert first.succeeded and not second.succeeded
    (current,) = second.responses
    assert isinstance(current, RangeResult)
    assert current.kvs[0].value == b"one" and current.kvs[0].mod_revision == first.revision


def test_an_update_on_the_revision_read_wins_once_and_a_stale_one_loses(
        client: EtcdClient, etcd_prefix: str) -> None:
    key = f"{etcd_prefix}obj"
    read = client.put(key, "v1")
    updated = client.txn([Compare.mod_revision(key, "=", read)], [TxnOp.put(key, "v2")])
    stale = client.txn([Compare.mod_revision(key, "=", read)], [TxnOp.put(key, "v3")])
    assert updated.succeeded and not stale.succeeded
    got = client.range(key).kvs[0]
    assert (got.value, got.mod_revision, got.version) == (b"v2", updated.revision, 2)
    assert client.txn([Compare.value(key, "=", "v2"), Compare.version(key, ">", 1)],
                      [TxnOp.delete(key)]).responses == [1]
    assert client.range(key).kvs == []


def test_a_prefix_range_pages_with_limit_counts_and_reads_the_past(
        client: EtcdClient, etcd_prefix: str) -> None:
    revisions = [client.put(f"{etcd_prefix}k{i}", f"v{i}") for i in range(5)]
    end = prefix_end(etcd_prefix)
    page = client.range(etcd_prefix, end, limit=2)
    assert [kv.key for kv in page.kvs] == [f"{etcd_prefix}k0".encode(),
                                          f"{etcd_prefix}k1".encode()]
    assert page.more and page.count == 5 and page.revision == revisions[-1]
    assert client.range(etcd_prefix, end, count_only=True).count == 5
    assert client.range(etcd_prefix, end, keys_only=True).kvs[4].value == b""
    assert client.range(etcd_prefix, end, revision=revisions[1]).count == 2
    assert client.delete(etcd_prefix, end) == (5, revisions[-1] + 1)


def test_a_lease_keeps_its_keys_while_renewed_and_they_vanish_when_it_expires(
        client: EtcdClient, etcd_prefix: str) -> None:
    lease = client.lease_grant(1)
    client.put(f"{etcd_prefix}leader", "me", lease=lease)
    assert client.range(f"{etcd_prefix}leader").kvs[0].lease == lease
    assert client.lease_keepalive(lease) == 1
    wait_until(lambda: not client.range(f"{etcd_prefix}leader").kvs, timeout=5,
               what="the key of the expired lease to vanish")
    assert client.lease_keepalive(lease) == 0
    assert client.lease_ttl(lease) == -1


def test_a_revoked_lease_takes_its_keys_at_once_and_revoking_again_is_no_error(
        client: EtcdClient, etcd_prefix: str) -> None:
    lease = client.lease_grant(30)
    client.put(f"{etcd_prefix}held", "x", lease=lease)
    assert 0 < client.lease_ttl(lease) <= 30
    client.lease_revoke(lease)
    assert client.range(f"{etcd_prefix}held").kvs == []
    client.lease_revoke(lease)


def test_a_watch_replays_from_its_start_revision_with_previous_values_then_follows(
        client: EtcdClient, etcd_prefix: str) -> None:
    key = f"{etcd_prefix}w".encode()
    created = client.put(key, b"a")
    client.put(key, b"b")
    with client.watch(etcd_prefix, prefix_end(etcd_prefix), start_revision=created) as watch:
        client.delete(key)
        events: list[WatchEvent] = []
        while len(events) < 3:
            events += next(watch).events
    assert [(e.type, e.kv.value, e.prev_kv and e.prev_kv.value) for e in events] == [
        ("PUT", b"a", None), ("PUT", b"b", b"a"), ("DELETE", b"", b"b")]
    assert [e.kv.mod_revision for e in events] == [created, created + 1, created + 2]


def test_a_watch_closed_from_another_thread_ends_its_iteration_and_leaks_nothing(
        client: EtcdClient, etcd_prefix: str) -> None:
    threads = threading.active_count()
    watch = client.watch(etcd_prefix, prefix_end(etcd_prefix))
    ended = threading.Event()

    def read() -> None:
        for _ in watch:
            pass
        ended.set()

    reader = threading.Thread(target=read)
    reader.start()
    wait_until(lambda: watch._reading, timeout=2, what="the reader to block on the stream")
    watch.close()
    assert ended.wait(2), "the reader did not wake up"
    reader.join(2)
    assert watch.closed and threading.active_count() == threads
    assert watch._reply.raw.closed  # the connection went back, not into the pool


def test_reads_and_watches_below_the_compacted_revision_answer_expired(
        client: EtcdClient, etcd_prefix: str) -> None:
    old = client.put(f"{etcd_prefix}c", "1")
    latest = client.put(f"{etcd_prefix}c", "2")
    client.compact(latest)
    with pytest.raises(Expired, match="compacted"):
        client.range(f"{etcd_prefix}c", revision=old)
    with pytest.raises(Expired, match=f"watch from revision {old}"), \
            client.watch(f"{etcd_prefix}c", start_revision=old) as watch:
        next(watch)
    assert client.range(f"{etcd_prefix}c", revision=latest).kvs[0].value == b"2"


def test_a_full_database_refuses_writes_with_store_full_and_raises_nospace(
        tmp_path: Path) -> None:
    with EtcdCluster(tmp_path / "full", members=1, quota_backend_bytes=256 * 1024) as etcd, \
            etcd.client() as client:
        with pytest.raises(StoreFull, match=r"etcd store full \(http://127\.0\.0\.1:\d+\): "
                                            r".*database space exceeded"):
            for i in range(40):
                client.put(f"/fill/{i}", b"x" * 100_000)
        assert client.alarms() == ["NOSPACE"]
        assert client.range("/fill/0").kvs[0].value == b"x" * 100_000


def test_over_tls_a_client_with_its_certificate_is_served_and_one_without_is_refused(
        tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    with EtcdCluster(tmp_path / "etcd", members=1, tls=tls) as etcd, etcd.client() as client:
        assert etcd.endpoints[0].startswith("https://127.0.0.1:")
        revision = client.put("/tls", "v")
        assert client.range("/tls").kvs[0].mod_revision == revision
        with EtcdClient(etcd.endpoints, ca_file=str(tls.ca), request_timeout=1) as anonymous, \
                pytest.raises(Unavailable, match=r"\(https://127.*TLS: .*bad certificate") as e:
            anonymous.put("/tls", "w")
        assert not isinstance(e.value, DeadlineExceeded)  # refused in the handshake: not sent
        with EtcdClient(etcd.endpoints, request_timeout=1) as untrusting, \
                pytest.raises(Unavailable, match="TLS: .*certificate verify failed"):
            untrusting.range("/tls")
