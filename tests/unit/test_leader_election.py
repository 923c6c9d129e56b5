"""Leader election of a controller kind (``runtime/leader.py``) against a fake etcd with
leases that expire on a fake clock: acquire, renew, the renew deadline that stops a leader
before its lease can expire, a standby that takes over only once the lease is gone, and
the lease released on a clean stop. No threads: the tests play the elector's two threads
(``step`` every retry period, ``check_deadline`` at the deadline) on the fake clock. Then
what the operator sees of it: the ROLE column of ``ps`` and the transitions counter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from ecsm_actors.cli.operator_output import ps_table
from ecsm_actors.clock import FakeClock
from ecsm_actors.config import load_config
from ecsm_actors.errors import ConfigError, Unavailable
from ecsm_actors.etcd.client import Compare, KeyValue, RangeResult, TxnOp, TxnResult
from ecsm_actors.protocol import Liveness
from ecsm_actors.runtime.leader import (
    AlwaysLeader,
    LeaderElector,
    LeaderRecord,
    check_durations,
    elector_for,
    read_leases,
)
from ecsm_actors.supervisor.views import role_of

PREFIX = "/ecsm-actors/"
KIND = "service-controller"
KEY = b"/ecsm-actors/leases/service-controller"
LEASE, RENEW, RETRY = 4.0, 3.0, 1.0


class FakeEtcd:
    """Keys, revisions and leases that expire ``ttl`` seconds after their grant or last
    keepalive, on the test's clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.rev = 1
        self.kvs: dict[bytes, KeyValue] = {}
        self.leases: dict[int, tuple[int, float]] = {}  # id → (ttl, expiry)
        self.next_lease = 0x100

    def expire(self) -> None:
        now = self.clock.now()
        for lease in [i for i, (_, at) in self.leases.items() if at <= now]:
            self.drop_lease(lease)

    def drop_lease(self, lease: int) -> None:
        self.leases.pop(lease, None)
        for key in [k for k, kv in self.kvs.items() if kv.lease == lease]:
            del self.kvs[key]
            self.rev += 1

    def lease_alive(self, lease: int) -> bool:
        self.expire()
        return lease in self.leases


class FakeClient:
    """One process's client: ``down`` refuses every call at once, ``hang`` makes every
    call take that many seconds of fake time and then fail (a partition: the request
    times out)."""

    def __init__(self, etcd: FakeEtcd) -> None:
        self.etcd = etcd
        self.down = False
        self.hang = 0.0
        self.calls: list[str] = []
        self.closed = False

    def _enter(self, op: str) -> None:
        self.calls.append(op)
        if self.hang:
            self.etcd.clock.advance(self.hang)
        if self.down or self.hang:
            raise Unavailable("etcd store unavailable (http://127.0.0.1:1): timed out")
        self.etcd.expire()

    def range(self, key: bytes, range_end: bytes | None = None) -> RangeResult:
        self._enter("range")
        kvs = [kv for k, kv in sorted(self.etcd.kvs.items())
               if (k == key if range_end is None else key <= k < range_end)]
        return RangeResult(kvs=kvs, count=len(kvs), more=False, revision=self.etcd.rev,
                           cluster_id="c")

    def txn(self, compare: Sequence[Compare], success: Sequence[TxnOp],
            failure: Sequence[TxnOp] = ()) -> TxnResult:
        self._enter("txn")

        def holds(c: Compare) -> bool:
            kv = self.etcd.kvs.get(c.key)
            actual = {"CREATE": kv.create_revision if kv else 0,
                      "MOD": kv.mod_revision if kv else 0}[c.target]
            return c.op == "=" and actual == c.operand

        ok = all(holds(c) for c in compare)
        responses: list[RangeResult | int | None] = []
        for op in success if ok else failure:
            if op.kind == "delete":
                gone = self.etcd.kvs.pop(op.key, None)
                self.etcd.rev += 1 if gone else 0
                responses.append(1 if gone else 0)
            elif op.kind == "put":
                assert op.lease in self.etcd.leases
                self.etcd.rev += 1
                old = self.etcd.kvs.get(op.key)
                self.etcd.kvs[op.key] = KeyValue(
                    key=op.key, value=op.value, mod_revision=self.etcd.rev,
                    create_revision=old.create_revision if old else self.etcd.rev,
                    version=(old.version if old else 0) + 1, lease=op.lease)
                responses.append(None)
            else:
                kvs = [self.etcd.kvs[op.key]] if op.key in self.etcd.kvs else []
                responses.append(RangeResult(kvs=kvs, count=len(kvs), more=False,
                                             revision=self.etcd.rev, cluster_id="c"))
        return TxnResult(succeeded=ok, revision=self.etcd.rev, responses=responses)

    def lease_grant(self, ttl: int) -> int:
        self._enter("grant")
        self.etcd.next_lease += 1
        self.etcd.leases[self.etcd.next_lease] = (ttl, self.etcd.clock.now() + ttl)
        return self.etcd.next_lease

    def lease_keepalive(self, lease_id: int) -> int:
        self._enter("keepalive")
        if lease_id not in self.etcd.leases:
            return 0
        ttl = self.etcd.leases[lease_id][0]
        self.etcd.leases[lease_id] = (ttl, self.etcd.clock.now() + ttl)
        return ttl

    def lease_revoke(self, lease_id: int) -> None:
        self._enter("revoke")
        self.etcd.drop_lease(lease_id)

    def lease_ttl(self, lease_id: int) -> int:
        self._enter("ttl")
        if lease_id not in self.etcd.leases:
            return -1
        return math.ceil(self.etcd.leases[lease_id][1] - self.etcd.clock.now())

    def watch(self, key: bytes, *, start_revision: int = 0, prev_kv: bool = True,
              progress_notify: bool = True) -> Any:
        self._enter("watch")
        raise Unavailable("etcd store unavailable (http://127.0.0.1:1): no watch here")

    def close(self) -> None:
        self.closed = True


class Candidate:
    """One controller instance: its client, its elector, what it was told."""

    def __init__(self, etcd: FakeEtcd, name: str, *, boot: str = "",
                 dead: set[int] | None = None) -> None:
        self.client = FakeClient(etcd)
        self.changes: list[tuple[float, bool]] = []
        self.stuck: list[float] = []
        clock = etcd.clock
        self.elector = LeaderElector(
            self.client, KIND, name, prefix=PREFIX, lease_duration=LEASE,
            renew_deadline=RENEW, retry_period=RETRY, clock=clock, wall=lambda: 1e9,
            on_change=lambda leading: self.changes.append((clock.now(), leading)),
            on_stuck=lambda: self.stuck.append(clock.now()),
            boot=boot, alive=lambda pid: pid not in (dead or set()))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
def etcd(clock: FakeClock) -> FakeEtcd:
    return FakeEtcd(clock)


def holder(etcd: FakeEtcd) -> str | None:
    kv = etcd.kvs.get(KEY)
    return None if kv is None else LeaderRecord.decode(kv.value).holder_identity


def test_the_first_candidate_acquires_the_lease_and_the_second_stays_standby(
        etcd: FakeEtcd, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    a, b = Candidate(etcd, "host-a:/run:1"), Candidate(etcd, "host-b:/run:2")
    caplog.set_level("INFO", logger="ecsm_actors.runtime.leader")
    a.elector.step()
    b.elector.step()
    assert holder(etcd) == "host-a:/run:1"
    assert etcd.leases[etcd.kvs[KEY].lease][0] == 4  # ceil(lease_duration) seconds
    assert a.elector.begin() and not b.elector.begin()
    assert a.changes == [(1000.0, True)] and b.changes == []
    assert a.elector.stats()["role"] == "leader" and b.elector.stats()["role"] == "standby"
    assert b.elector.stats()["holder"] == "host-a:/run:1"
    assert [r.getMessage() for r in caplog.records] == [
        "service-controller: leading (acquired; lease /ecsm-actors/leases/service-controller,"
        " identity host-a:/run:1)",
        "service-controller: the leader is host-a:/run:1"]


def test_a_leader_that_renews_every_retry_period_keeps_leading(
        etcd: FakeEtcd, clock: FakeClock) -> None:
    a, b = Candidate(etcd, "a"), Candidate(etcd, "b")
    a.elector.step()
    for _ in range(20):  # 20 s: five lease durations
        clock.advance(RETRY)
        a.elector.step()
        b.elector.step()
        assert a.elector.leading() and not b.elector.leading()
    assert a.changes == [(1000.0, True)] and a.elector.stats()["transitions"] == 1
    assert a.client.calls.count("keepalive") == 20


def test_a_leader_whose_renewals_hang_stops_at_the_deadline_before_its_lease_expires(
        etcd: FakeEtcd, clock: FakeClock) -> None:
    a = Candidate(etcd, "a")
    a.elector.step()  # granted at t0: the lease lives until t0 + 4 unless renewed
    t0 = clock.now()
    lease = etcd.kvs[KEY].lease
    assert a.elector.begin()  # a reconcile in flight
    seen: dict[str, Any] = {}

    def probe(name: str) -> None:
        seen[name] = (a.elector.begin(), etcd.lease_alive(lease))
        if seen[name][0]:
            a.elector.end()

    clock.call_later(RENEW - 0.01, lambda: probe("just before the deadline"))
    clock.call_later(RENEW, lambda: probe("at the deadline"))
    clock.call_later(RENEW, a.elector.check_deadline)  # the deadline thread wakes up
    clock.call_later(RENEW + 0.5, a.elector.end)  # the reconcile in flight finishes
    clock.advance(RETRY)
    a.client.hang = 5.0  # the renewal sent at t0 + 1 waits until t0 + 6, then fails
    a.elector.step()
    assert seen == {"just before the deadline": (True, True),
                    "at the deadline": (False, True)}  # stopped while the lease still lived
    assert a.changes == [(t0, True), (t0 + RENEW, False)]
    assert a.stuck == []  # the reconcile in flight finished before the lease could expire
    assert not a.elector.leading() and a.elector.stats()["transitions"] == 2


def test_a_reconcile_still_running_when_the_lease_may_expire_ends_the_process(
        etcd: FakeEtcd, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    a = Candidate(etcd, "a")
    a.elector.step()
    t0 = clock.now()
    assert a.elector.begin()
    a.client.down = True
    clock.advance(RENEW)
    a.elector.check_deadline()
    assert a.stuck == [t0 + LEASE]
    assert "1 reconcile(s) still running when the lease may expire: exiting" in caplog.text


def test_a_standby_takes_over_only_once_the_lease_is_gone(
        etcd: FakeEtcd, clock: FakeClock) -> None:
    a, b = Candidate(etcd, "a"), Candidate(etcd, "b")
    a.elector.step()
    b.elector.step()
    t0 = clock.now()
    a.client.down = True  # a is cut off from etcd: it cannot renew
    took_over = None
    while clock.now() < t0 + 10 and took_over is None:
        clock.advance(0.25)
        a.elector.step()
        b.elector.step()
        assert not (a.elector.leading() and b.elector.leading())
        if b.elector.leading():
            took_over = clock.now()
    assert a.changes[-1] == (t0 + RENEW, False)
    assert took_over == t0 + LEASE  # the moment etcd expired a's lease, not before
    assert holder(etcd) == "b"


def test_a_leader_that_renews_late_but_in_time_for_etcd_resumes_without_a_new_campaign(
        etcd: FakeEtcd, clock: FakeClock) -> None:
    a, b = Candidate(etcd, "a"), Candidate(etcd, "b")
    a.elector.step()
    t0 = clock.now()
    a.client.down = True
    clock.advance(RENEW)
    a.elector.step()  # the renewal fails: the deadline passes, a steps down
    assert not a.elector.leading()
    a.client.down = False
    clock.advance(0.5)  # the lease lives until t0 + 4
    b.elector.step()
    a.elector.step()
    assert a.elector.leading() and not b.elector.leading()
    assert [leading for _, leading in a.changes] == [True, False, True]
    assert a.client.calls.count("grant") == 1 and holder(etcd) == "a"
    assert t0 + RENEW + 0.5 == clock.now()


def test_a_leader_whose_key_was_deleted_steps_down_and_campaigns_again(
        etcd: FakeEtcd, clock: FakeClock) -> None:
    a, b = Candidate(etcd, "a"), Candidate(etcd, "b")
    a.elector.step()
    del etcd.kvs[KEY]  # the prefix wiped
    b.elector.step()  # b creates it anew with a lease of its own
    clock.advance(RETRY)
    a.elector.step()
    assert not a.elector.leading() and b.elector.leading()
    assert holder(etcd) == "b" and len(etcd.leases) == 1  # a's lease revoked


def test_a_clean_stop_revokes_the_lease_so_a_standby_leads_at_its_next_try(
        etcd: FakeEtcd, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    a, b = Candidate(etcd, "a"), Candidate(etcd, "b")
    caplog.set_level("INFO", logger="ecsm_actors.runtime.leader")
    a.elector.step()
    b.elector.step()
    a.elector.stop()
    assert etcd.leases == {} and KEY not in etcd.kvs and a.client.closed
    b.elector.step()  # no time passed: no waiting for an expiry
    assert b.elector.leading() and holder(etcd) == "b"
    assert "service-controller: stopped leading: shutting down, lease released" in caplog.text


def test_a_controller_restarted_in_place_takes_over_from_its_dead_predecessor_at_once(
        etcd: FakeEtcd, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="ecsm_actors.runtime.leader")
    old = Candidate(etcd, "host:/run:100", boot="boot-1")
    old.elector.step()  # leads, then dies (kill -9): its lease lives on for 4 s
    gone = {100}
    waiting = [Candidate(etcd, "host:/other-run:200", boot="boot-1", dead=gone),
               Candidate(etcd, "host:/run:300", boot="boot-2", dead=gone),  # another computer
               Candidate(etcd, "host:/run:400", boot="boot-1")]  # pid 100 still alive
    restarted = Candidate(etcd, "host:/run:500", boot="boot-1", dead=gone)
    for candidate in waiting:
        candidate.elector.step()
        assert not candidate.elector.leading()
    restarted.elector.step()  # no time passed
    assert restarted.elector.leading() and holder(etcd) == "host:/run:500"
    assert list(etcd.leases) == [etcd.kvs[KEY].lease]  # the predecessor's lease revoked
    assert ("service-controller: the lease of host:/run:100, a process of this computer "
            "that is gone, released") in caplog.text
    assert LeaderRecord.decode(etcd.kvs[KEY].value).boot_id == "boot-1"


def test_a_campaign_that_loses_the_race_revokes_its_lease(etcd: FakeEtcd) -> None:
    a, b = Candidate(etcd, "a"), Candidate(etcd, "b")
    real_range = b.client.range

    def absent_then_a_campaigns(key: bytes, range_end: bytes | None = None) -> RangeResult:
        a.elector.step()
        return RangeResult(kvs=[], count=0, more=False, revision=1, cluster_id="c")

    b.client.range = absent_then_a_campaigns  # type: ignore[method-assign]
    b.elector.step()  # b read the key absent, then a created it before b's txn
    b.client.range = real_range  # type: ignore[method-assign]
    assert a.elector.leading() and not b.elector.leading()
    assert list(etcd.leases) == [etcd.kvs[KEY].lease]


class FakeWatch:
    def __init__(self, responses: list[Any]) -> None:
        self.responses = responses
        self.closed = False

    def __iter__(self) -> Any:
        return iter(self.responses)

    def close(self) -> None:
        self.closed = True


def test_a_standby_watching_the_leaders_key_tries_again_as_soon_as_it_is_deleted(
        etcd: FakeEtcd, clock: FakeClock) -> None:
    a, b = Candidate(etcd, "a"), Candidate(etcd, "b")
    a.elector.step()
    b.elector.step()
    held_at = etcd.kvs[KEY].mod_revision
    watches: list[tuple[bytes, int, FakeWatch]] = []

    def watch(key: bytes, *, start_revision: int = 0, prev_kv: bool = True,
              progress_notify: bool = True) -> FakeWatch:
        a.elector.stop()  # the leader goes while the standby watches its key
        deleted = SimpleNamespace(events=[SimpleNamespace(type="DELETE")], canceled=False)
        watches.append((key, start_revision, FakeWatch([deleted])))
        return watches[-1][2]

    b.client.watch = watch  # type: ignore[method-assign]
    b.elector.watch_once()
    assert [(key, start) for key, start, _ in watches] == [(KEY, held_at + 1)]
    assert watches[0][2].closed
    assert b.elector._nudge.is_set()  # the elector's wait for its next try ends now
    b.elector.step()
    assert b.elector.leading()


def test_etcd_errors_are_logged_once_per_streak_and_never_raised(
        etcd: FakeEtcd, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    a = Candidate(etcd, "a")
    caplog.set_level("INFO", logger="ecsm_actors.runtime.leader")
    a.client.down = True
    for _ in range(5):
        a.elector.step()
        clock.advance(RETRY)
    a.client.down = False
    a.elector.step()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot reach etcd" in m for m in messages) == 1
    assert "service-controller: leader election reaches etcd again" in messages
    assert a.elector.leading()


def test_the_lease_holders_are_read_with_their_age(etcd: FakeEtcd, clock: FakeClock) -> None:
    a = Candidate(etcd, "host-a:/run:1")
    a.elector.step()
    leases = read_leases(a.client, PREFIX, wall=lambda: 1e9 + 42.0)
    assert leases == {KIND: {"holder": "host-a:/run:1", "age": 42.0,
                             "lease": f"{etcd.kvs[KEY].lease:x}", "ttl": 4}}


def test_durations_that_cannot_work_are_refused_and_lmdb_always_leads(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="lease_duration > controller.renew_deadline"):
        check_durations(3.0, 3.0, 1.0)
    with pytest.raises(ConfigError):
        check_durations(4.0, 3.0, 3.0)
    cfg = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(tmp_path)})
    leader = elector_for(cfg, KIND)
    assert isinstance(leader, AlwaysLeader)
    assert leader.begin() and leader.stats()["role"] == "leader"


def test_a_record_that_is_not_json_reads_as_a_bare_identity() -> None:
    assert LeaderRecord.decode(b"host:/run:7") == LeaderRecord(holder_identity="host:/run:7")
    record = LeaderRecord(holder_identity="h", acquire_time=5.0, lease_duration_seconds=4)
    assert LeaderRecord.decode(record.encode()) == record


def test_ps_shows_each_controllers_role_and_a_dash_for_children_that_do_not_elect() -> None:
    def report(stats: dict[str, Any]) -> Liveness:
        return Liveness(name="c", pid=7, ts=1.0, stats=stats)

    roles = [role_of(report({"election": {"role": "leader", "leading": True}})),
             role_of(report({"election": {"role": "standby"}})),
             role_of(report({"requests": 3})), role_of(None),
             role_of(report({"election": {"role": "king"}})),
             role_of(report({"election": "leader"}))]
    assert roles == ["leader", "standby", None, None, None, None]
    base = {"state": "RUNNING", "pid": 41, "uptime": 5.0, "restarts": 0, "lastExit": None,
            "heartbeatAge": 0.1, "queue": 0, "retryIn": None, "reason": ""}
    lines = ps_table([{**base, "name": "registry", "role": None},
                      {**base, "name": "service-controller", "role": "leader"},
                      {**base, "name": "hpa-controller", "role": "standby"}]).splitlines()
    assert lines[0].split()[-1] == "ROLE"
    assert [line.split()[-1] for line in lines[1:]] == ["-", "leader", "standby"]


def test_leadership_changes_are_a_counter_of_the_metrics_exposition() -> None:
    from ecsm_actors.supervisor.metrics import render

    election = {"role": "standby", "leading": False, "transitions": 3, "roleAge": 1.5,
                "holder": "h:/run:9", "identity": "h:/run:8", "lease": "/p/leases/x"}
    text = render({"service-controller": {"state": "RUNNING", "liveness": {
        "queueDepth": 0, "oldestInflightAge": 0.0,
        "stats": {"reconciles": 1, "election": election}}}}).decode()
    assert ('ecsm_actors_controller_election_transitions_total{child="service-controller"} 3.0'
            in text)
    assert 'ecsm_actors_controller_election_leading{child="service-controller"} 0.0' in text


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_elector_whose_thread_died_of_a_bug_is_not_alive(etcd: FakeEtcd) -> None:
    client = FakeClient(etcd)

    def bug(key: bytes, range_end: bytes | None = None) -> RangeResult:
        raise RuntimeError("a bug")

    client.range = bug  # type: ignore[method-assign]
    elector = LeaderElector(client, KIND, "a", lease_duration=LEASE, renew_deadline=RENEW,
                            retry_period=RETRY).start()
    assert AlwaysLeader().alive()
    try:
        elector._threads[0].join(timeout=5)  # the elector thread: dead of the bug
        assert not elector.alive()  # so the controller process exits for a restart
    finally:
        elector.stop()
