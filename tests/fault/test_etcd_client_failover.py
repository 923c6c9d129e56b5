"""The etcd client against a real 3-member cluster losing members: a killed member is
skipped, a broken watch is resumed elsewhere, quorum lost answers Unavailable within the
request timeout while serializable reads still answer, a restarted member catches up.
One cluster shared by the module, healed before each test."""

from __future__ import annotations

import time

import pytest

from ecsm_actors.errors import DeadlineExceeded, Unavailable
from ecsm_actors.etcd import EtcdClient, WatchEvent, prefix_end
from tests.etcd_cluster import EtcdCluster
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(60)


def test_a_killed_member_is_skipped_and_the_client_sticks_to_the_next(
        etcd_cluster: EtcdCluster, etcd_prefix: str) -> None:
    dead = etcd_cluster.follower()
    order = [etcd_cluster.endpoints[(dead + i) % 3] for i in range(3)]
    etcd_cluster.kill(dead)
    with EtcdClient(order, dial_timeout=0.5, request_timeout=2.0) as client:
        t0 = time.monotonic()
        revision = client.put(f"{etcd_prefix}k", "v")
        assert time.monotonic() - t0 < 0.5
        assert client.endpoint == order[1]
        assert client.range(f"{etcd_prefix}k").kvs[0].mod_revision == revision


def test_writes_racing_the_leaders_death_fail_as_unknown_and_later_ones_succeed(
        etcd_cluster: EtcdCluster, etcd_prefix: str) -> None:
    """A write a follower forwarded to the leader as it died is lost in raft and waits out
    the request timeout: its outcome is unknown (DeadlineExceeded, never sent again).
    Once a new leader is elected, writes succeed again."""
    etcd_cluster.kill(etcd_cluster.leader())
    outcomes: list[str] = []
    with etcd_cluster.client(request_timeout=1.0) as client:
        def write() -> bool:
            try:
                client.put(f"{etcd_prefix}k", str(len(outcomes)))
            except DeadlineExceeded as e:
                assert e.applied is None
                outcomes.append("unknown")
                return False
            except Unavailable:
                outcomes.append("refused")
                return False
            outcomes.append("ok")
            return True
        wait_until(write, timeout=6, interval=0, what="a write to succeed after the election")
        assert len(outcomes) <= 3, outcomes


def test_a_watch_broken_by_its_member_dying_resumes_on_another_without_losing_a_change(
        etcd_cluster: EtcdCluster, etcd_prefix: str) -> None:
    leader = etcd_cluster.leader()
    watched = (leader + 1) % 3  # a follower: killing it leaves a working cluster
    order = [etcd_cluster.endpoints[(watched + i) % 3] for i in range(3)]
    end = prefix_end(etcd_prefix)
    with EtcdClient(order, dial_timeout=0.5, request_timeout=2.0) as client:
        watch = client.watch(etcd_prefix, end)
        client.put(f"{etcd_prefix}a", "1")
        seen: list[WatchEvent] = list(next(watch).events)
        etcd_cluster.kill(watched)
        missed = client.put(f"{etcd_prefix}b", "2")
        with pytest.raises(Unavailable, match="watch stream"):
            next(watch)
        with client.watch(etcd_prefix, end,
                          start_revision=seen[-1].kv.mod_revision + 1) as resumed:
            seen += next(resumed).events
        assert [(e.kv.key, e.kv.mod_revision) for e in seen] == [
            (f"{etcd_prefix}a".encode(), missed - 1), (f"{etcd_prefix}b".encode(), missed)]


def test_quorum_lost_answers_unavailable_within_the_request_timeout_and_serializable_reads(
        etcd_cluster: EtcdCluster, etcd_prefix: str) -> None:
    with etcd_cluster.client(request_timeout=1.0) as client:
        client.put(f"{etcd_prefix}k", "before")
        leader = etcd_cluster.leader()
        survivor = (leader + 1) % 3
        for i in range(3):
            if i != survivor:
                etcd_cluster.kill(i)
        with EtcdClient([etcd_cluster.endpoints[survivor]], request_timeout=1.0) as alone:
            wait_until(lambda: alone.status()["leader"] == 0, timeout=5,
                       what="the survivor to notice it has no leader")
        t0 = time.monotonic()
        with pytest.raises(Unavailable, match=r"^etcd store unavailable \(http://127.*"
                                              r"no leader") as refused:
            client.put(f"{etcd_prefix}k", "during")
        assert time.monotonic() - t0 < 1.5
        assert not isinstance(refused.value, DeadlineExceeded)  # refused: surely not applied
        t0 = time.monotonic()
        with pytest.raises(Unavailable, match="no leader"):
            client.range(f"{etcd_prefix}k")
        assert time.monotonic() - t0 < 1.5
        assert client.range(f"{etcd_prefix}k", serializable=True).kvs[0].value == b"before"


def test_a_restarted_member_catches_up_with_the_writes_it_missed(
        etcd_cluster: EtcdCluster, etcd_prefix: str) -> None:
    down = etcd_cluster.follower()
    etcd_cluster.kill(down)
    with etcd_cluster.client() as client:
        revision = client.put(f"{etcd_prefix}while-down", "x")
    etcd_cluster.start_member(down)
    with EtcdClient([etcd_cluster.endpoints[down]], request_timeout=2.0) as member:
        got = member.range(f"{etcd_prefix}while-down")
    assert got.kvs[0].mod_revision == revision
