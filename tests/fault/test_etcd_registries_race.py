"""Two registry processes (two hosts' run dirs) serving ONE etcd prefix at once, raced
and broken: the case the LMDB store never had. One 3-member etcd cluster and one pair of
registries are shared by the module; each test uses objects of its own names.

* optimistic concurrency: four client processes updating one object through both
  registries — every acknowledged update applied exactly once, generation bumped once per
  spec change, a Conflict only when the client's resourceVersion was replaced;
* exactly once: one requestId sent through both registries at once (a reply lost, the
  retry through the other host) — one outcome, the other replayed, nothing applied twice
  (single writes and BATCH, atomic or not);
* APPLY created/configured/unchanged and a finalizer delete raced through both;
* a registry killed (-9) amid its writes and restarted: what was acknowledged is there,
  nothing half-written, its subscribers resume without a gap;
* an etcd member killed amid writes through both registries, and quorum lost while a
  write is in flight: nothing acknowledged lost, an unknown outcome answered as unknown,
  a retry with the same requestId never applies twice;
* the prefix wiped while both run: both adopt the new epoch, informers relist.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.config import ControllerSettings, load_config
from ecsm_actors.errors import DeadlineExceeded, NotFound, RegistryError
from ecsm_actors.etcd.client import prefix_end
from ecsm_actors.informer import Informer
from ecsm_actors.protocol import Op
from ecsm_actors.registry.client import RegistryClient, Subscriber
from ecsm_actors.store.etcd_store import EtcdStore
from tests.etcd_cluster import EtcdCluster
from tests.helpers import Processes, RecordingHandler, wait_until
from tests.registry_fixtures import registry_config, start_registry
from tests.registry_samples import service, with_changes

pytestmark = pytest.mark.timeout(60)

KIND = "ECSMService"
WORKER = Path(__file__).resolve().parents[1] / "etcd_race_worker.py"


class Host:
    """One registry process in its own run dir (a host), on the shared etcd prefix."""

    def __init__(self, run_dir: Path, env: dict[str, str]) -> None:
        run_dir.mkdir(mode=0o700)
        self.processes = Processes(run_dir)
        self.env = env
        self.endpoint = registry_config(self.processes, env).registry_endpoint
        self.proc: Any = None
        self.clients: list[RegistryClient] = []

    def start(self) -> None:
        self.proc, ping = start_registry(self.processes, self.env)
        ping.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        self.processes.kill(self.proc)
        self.proc.wait(10)

    def client(self, *, timeout: float = 2.0, deadline: float = 8.0) -> RegistryClient:
        """A client of this host's registry (closed with the module)."""
        client = RegistryClient(self.endpoint, timeout=timeout, deadline=deadline)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.processes.cleanup()


@pytest.fixture(scope="module")
def hosts(etcd_cluster_module: EtcdCluster) -> Iterator[tuple[Host, Host]]:
    base = Path(tempfile.mkdtemp(prefix="ea-", dir="/tmp"))
    env = {"ECSM_ACTORS_STORE_BACKEND": "etcd",
           "ECSM_ACTORS_STORE_ETCD_ENDPOINTS": ",".join(etcd_cluster_module.endpoints),
           "ECSM_ACTORS_STORE_ETCD_PREFIX": f"/race-{uuid.uuid4().hex[:12]}/",
           "ECSM_ACTORS_STORE_ETCD_REQUEST_TIMEOUT": "1.5",
           "ECSM_ACTORS_REGISTRY_HEARTBEAT_INTERVAL": "0.2"}
    pair = (Host(base / "a", env), Host(base / "b", env))
    try:
        for host in pair:
            host.start()
        yield pair
    finally:
        for host in pair:
            host.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pair(hosts: tuple[Host, Host], etcd_cluster: EtcdCluster,
         request: pytest.FixtureRequest) -> Iterator[tuple[Host, Host]]:
    """Both registries running (restarted if a test killed one), etcd healed."""
    for host in hosts:
        if not host.alive():
            host.start()
    yield hosts
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for host in hosts:
            print(host.processes.logs())


def race(*calls: tuple[RegistryClient, Callable[[RegistryClient], Any]]) -> list[Any]:
    """Run each ``fn(client)`` in its own thread, released together; each outcome is
    ``(result or error, replayed)``."""
    barrier = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def run(i: int, client: RegistryClient, fn: Callable[[RegistryClient], Any]) -> None:
        barrier.wait()
        try:
            out[i] = (fn(client), client.last_replayed)
        except RegistryError as e:
            out[i] = (e, e.replayed)

    threads = [threading.Thread(target=run, args=(i, c, f)) for i, (c, f) in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def rv_of(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


# -- optimistic concurrency across registries ---------------------------------------------


def test_four_clients_updating_one_object_through_two_registries_apply_each_acknowledged_update_once(  # noqa: E501
        pair: tuple[Host, Host], tmp_path: Path) -> None:
    a, b = pair
    created = a.client().create(service("occ", image="app@0.0.0#sylixos",
                                        annotations={"log": ""}))
    outs = [tmp_path / f"client{i}.jsonl" for i in range(4)]
    workers = [(a if i < 2 else b).processes.spawn(
        sys.executable, str(WORKER), (a if i < 2 else b).endpoint, str(i), "12", str(out),
        module=False, log_name=f"worker{i}") for i, out in enumerate(outs)]
    for worker in workers:
        assert worker.wait(40) == 0
    lines = [json.loads(line) for out in outs for line in out.read_text().splitlines()]
    updates = [r for r in lines if "token" in r]
    statuses = [r for r in lines if r.get("status")]
    acked = sorted((r for r in updates if "rv" in r), key=lambda r: r["rv"])
    refused = [r for r in updates if "error" in r]
    assert len(updates) == 48 and acked
    assert {r["error"] for r in refused} <= {"Conflict"}, refused
    assert all("rv" in r for r in statuses), "an unconditional write was refused"
    final = b.client().get(KIND, "default", "occ")
    # every acknowledged update is in the object exactly once, in the order of versions
    assert final["metadata"]["annotations"]["log"].split() == [r["token"] for r in acked]
    assert final["metadata"]["generation"] == 1 + len(acked)
    # each update was made from the version the previous one left (status writes between)
    previous = rv_of(created)
    for r in acked:
        assert previous <= r["base"] < r["rv"], (previous, r)
        previous = r["rv"]
    # a Conflict only when the version the client read had been replaced
    versions = [r["rv"] for r in acked + statuses]
    for r in refused:
        assert any(v > r["base"] for v in versions), r


# -- exactly once across registries -------------------------------------------------------


def test_a_write_whose_reply_was_lost_retried_through_the_other_registry_is_replayed(
        pair: tuple[Host, Host]) -> None:
    a, b = pair
    ca, cb = a.client(), b.client()
    first = ca.request(Op.CREATE, object=service("lost-reply"), requestId="lost-reply-1")
    cb.update(service("lost-reply", replicas=7))  # changed again meanwhile
    again = cb.request(Op.CREATE, object=service("lost-reply"), requestId="lost-reply-1")
    assert cb.last_replayed and again == first  # the object as that write left it
    batch = [{"op": "UPDATE", "object": service("lost-reply", replicas=8)},
             {"op": "CREATE", "object": service("lost-reply")}]
    first = cb.request(Op.BATCH, writes=batch, requestId="lost-reply-2")
    again = ca.request(Op.BATCH, writes=batch, requestId="lost-reply-2")
    assert ca.last_replayed and again == first
    assert ca.get(KIND, "default", "lost-reply")["metadata"]["generation"] == 3


def test_one_request_id_sent_through_both_registries_at_once_is_applied_once(
        pair: tuple[Host, Host]) -> None:
    a, b = pair
    ca, cb = a.client(), b.client()
    for name in ("x1", "x2", "x3"):
        cb.create(service(name))
    writes: list[tuple[str, Callable[[RegistryClient, str], Any]]] = [
        ("create", lambda c, rid: c.request(Op.CREATE, object=service("once"), requestId=rid)),
        ("update", lambda c, rid: c.request(Op.UPDATE, object=service("once", replicas=4),
                                            requestId=rid)),
        ("batch", lambda c, rid: c.request(Op.BATCH, requestId=rid, writes=[
            {"op": "CREATE", "object": service("once-b")},
            {"op": "UPDATE", "object": service("x1", replicas=5)},
            {"op": "DELETE", "kind": KIND, "namespace": "default", "name": "x2"},
            {"op": "CREATE", "object": service("x3")}])),
        ("atomic", lambda c, rid: c.request(Op.BATCH, requestId=rid, atomic=True, writes=[
            {"op": "UPDATE", "object": service("once-b", replicas=6)},
            {"op": "DELETE", "kind": KIND, "namespace": "default", "name": "x3"},
            {"op": "UPDATE", "object": service("x1", replicas=7)}])),
        # a write that changes nothing and one refused: only the record is put
        ("unchanged", lambda c, rid: c.request(Op.APPLY, object=service("once", replicas=4),
                                               requestId=rid)),
        ("refused", lambda c, rid: c.request(Op.CREATE, object=service("x1"), requestId=rid)),
        ("delete", lambda c, rid: c.request(Op.DELETE, kind=KIND, namespace="default",
                                            name="once", requestId=rid)),
    ]
    for what, write in writes:
        rid = f"both-{what}"
        outcomes = race((ca, lambda c, w=write, r=rid: w(c, r)),
                        (cb, lambda c, w=write, r=rid: w(c, r)))
        assert sorted(replayed for _, replayed in outcomes) == [False, True], (what, outcomes)
        if what == "refused":
            assert all(isinstance(r, RegistryError) and r.code == "AlreadyExists"
                       for r, _ in outcomes), outcomes
            continue
        assert not any(isinstance(result, RegistryError) for result, _ in outcomes), outcomes
        assert outcomes[0][0] == outcomes[1][0], what
        if what == "update":
            assert ca.get(KIND, "default", "once")["metadata"]["generation"] == 2
        if what == "batch":
            codes = [r.get("error", {}).get("code") for r in outcomes[0][0]["results"]]
            assert codes == [None, None, None, "AlreadyExists"]
    x1 = cb.get(KIND, "default", "x1")
    assert x1["metadata"]["generation"] == 3  # two spec changes, each applied once
    with pytest.raises(NotFound):
        cb.get(KIND, "default", "x3")


# -- APPLY and finalizers raced through both registries -----------------------------------


def test_apply_and_a_finalizer_delete_raced_through_both_registries(
        pair: tuple[Host, Host]) -> None:
    a, b = pair
    ca, cb = a.client(), b.client()
    for i in range(4):
        manifest = service(f"ap{i}", finalizers=["ecsm.sh/cleanup"])
        outcomes = race((ca, lambda c, m=manifest: c.apply(m)),
                        (cb, lambda c, m=manifest: c.apply(m)))
        actions = sorted(str(r.action) for r, _ in outcomes)
        assert actions == ["created", "unchanged"], outcomes
        assert rv_of(outcomes[0][0].object) == rv_of(outcomes[1][0].object)
        outcomes = race(
            (ca, lambda c, i=i: c.apply(service(f"ap{i}", image="app@2.0#sylixos"))),
            (cb, lambda c, i=i: c.apply(service(f"ap{i}", image="app@3.0#sylixos"))))
        assert [str(r.action) for r, _ in outcomes] == ["configured", "configured"]
        last = max((r.object for r, _ in outcomes), key=rv_of)
        now = cb.get(KIND, "default", f"ap{i}")
        assert now["metadata"]["generation"] == 3 and now == last
        assert now["metadata"]["finalizers"] == ["ecsm.sh/cleanup"]
        deleted = race((ca, lambda c, i=i: c.delete(KIND, "default", f"ap{i}")),
                       (cb, lambda c, i=i: c.delete(KIND, "default", f"ap{i}")))
        marked = [r for r, _ in deleted]
        assert all(isinstance(r, dict) and r["metadata"].get("deletionTimestamp")
                   for r in marked), marked
        assert rv_of(marked[0]) == rv_of(marked[1])  # marked once, the other a no-op
        status = {**marked[0], "status": {"observedGeneration": 3}}
        status["metadata"] = {**marked[0]["metadata"], "resourceVersion": None}
        gone = race((ca, lambda c, o=marked[0]: c.update(with_changes(
                        o, metadata__finalizers=[], metadata__resourceVersion=None))),
                    (cb, lambda c, s=status: c.update_status(s)))
        removed, written = gone[0][0], gone[1][0]
        assert not isinstance(removed, RegistryError), removed
        assert not isinstance(written, RegistryError) or isinstance(written, NotFound), written
        with pytest.raises(NotFound):
            ca.get(KIND, "default", f"ap{i}")


# -- a registry killed, an etcd member killed, quorum lost ---------------------------------


@pytest.fixture
def informer_on() -> Iterator[Callable[[Host, RecordingHandler], Informer]]:
    """``informer_on(host, handler)``: a started informer of ECSMService through a host's
    registry (stopped, and its clients closed, at teardown)."""
    made: list[Any] = []
    informers: list[Informer] = []

    def keep(thing: Any) -> Any:
        made.append(thing)
        return thing

    def make(host: Host, handler: RecordingHandler) -> Informer:
        cfg = load_config(None, environ=host.processes.env(host.env))
        informer = Informer(
            KIND, handler,
            registry_factory=lambda: keep(RegistryClient(cfg.registry_endpoint, timeout=1.0)),
            subscriber_factory=lambda: keep(Subscriber(cfg.events_endpoint)),
            settings=ControllerSettings(watch_deadline=2.0, resync_period=0.0))
        informers.append(informer.start())
        assert informer.wait_for_sync(10)
        return informer

    yield make
    for informer in informers:
        informer.stop()
    for thing in made:
        thing.close()


class Writers:
    """Threads creating objects ``<prefix><n>`` through given clients until stopped, each
    write with its own requestId; what each write answered, by name."""

    def __init__(self, prefix: str, clients: list[RegistryClient], *,
                 pairs: bool = False) -> None:
        self.prefix, self.pairs = prefix, pairs
        self.outcomes: dict[str, Any] = {}
        self.rids: dict[str, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i, c))
                         for i, c in enumerate(clients)]

    def __enter__(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def acked(self) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes.values() if not isinstance(o, Exception))

    def _run(self, writer: int, client: RegistryClient) -> None:
        n = 0
        while not self._stop.is_set():
            name = f"{self.prefix}{writer}-{n}"
            rid = f"{name}-{uuid.uuid4().hex[:8]}"
            try:
                if self.pairs:  # an atomic BATCH of two creates: both or neither
                    outcome: Any = client.request(Op.BATCH, requestId=rid, atomic=True,
                                                  writes=[{"op": "CREATE",
                                                           "object": service(f"{name}a")},
                                                          {"op": "CREATE",
                                                           "object": service(f"{name}b")}])
                else:
                    outcome = client.request(Op.CREATE, object=service(name), requestId=rid)
            except RegistryError as e:
                outcome = e
            with self._lock:
                self.outcomes[name], self.rids[name] = outcome, rid
            n += 1


def names_present(client: RegistryClient, prefix: str) -> set[str]:
    return {o["metadata"]["name"] for o in client.list(KIND).items
            if o["metadata"]["name"].startswith(prefix)}


def test_a_registry_killed_amid_its_writes_and_restarted_loses_nothing_acknowledged_and_its_subscribers_miss_nothing(  # noqa: E501
        pair: tuple[Host, Host], informer_on: Callable[[Host, RecordingHandler], Informer]) -> None:
    a, b = pair
    handler = RecordingHandler()
    informer = informer_on(a, handler)
    with Writers("kill-", [a.client(timeout=1.0, deadline=15.0) for _ in range(2)]
                 + [b.client()], pairs=True) as writers:
        wait_until(lambda: writers.acked() >= 10, timeout=10, what="writes under way")
        a.kill()
        a.start()
        acked_before = writers.acked()
        wait_until(lambda: writers.acked() >= acked_before + 10, timeout=10,
                   what="writes after the restart")
    present = names_present(b.client(), "kill-")
    for name, outcome in writers.outcomes.items():
        both = {f"{name}a", f"{name}b"} & present
        assert len(both) in (0, 2), f"{name}: half an atomic BATCH is stored: {both}"
        if not isinstance(outcome, Exception):
            assert both, f"{name}: acknowledged, then lost"
    wait_until(lambda: len(handler.adds("default/kill-")) >= len(present), timeout=10,
               what="the informer to see every creation")
    adds = handler.adds("default/kill-")
    assert sorted(k for k, _ in adds) == sorted(f"default/{n}" for n in present)
    assert [rv for _, rv in adds] == sorted(rv for _, rv in adds)  # in order, once
    assert informer.stats()["relists"] == 1  # resumed by the event chain, no relist


def test_an_etcd_member_killed_amid_writes_through_both_registries_loses_nothing_and_applies_nothing_twice(  # noqa: E501
        pair: tuple[Host, Host], etcd_cluster: EtcdCluster) -> None:
    a, b = pair
    clients = [a.client(timeout=1.0, deadline=3.0), b.client(timeout=1.0, deadline=3.0)]
    readers = [a.client(timeout=1.0, deadline=3.0), b.client(timeout=1.0, deadline=3.0)]
    readers[0].create(service("member-read"))
    stale: list[bool] = []
    reading = threading.Event()

    def read(client: RegistryClient) -> None:
        while not reading.is_set():
            client.get(KIND, "default", "member-read")
            stale.append(client.last_stale)

    threads = [threading.Thread(target=read, args=(c,)) for c in readers]
    with Writers("member-", clients) as writers:
        for t in threads:
            t.start()
        wait_until(lambda: writers.acked() >= 10, timeout=10, what="writes under way")
        etcd_cluster.kill(0)  # the member both registries talk to (their first endpoint)
        acked_before = writers.acked()
        wait_until(lambda: writers.acked() >= acked_before + 10, timeout=15,
                   what="writes after the member died")
        reading.set()
        for t in threads:
            t.join(10)
    # one member of three down is no loss of quorum: no read was served stale
    assert stale and not any(stale), f"{sum(stale)} of {len(stale)} reads stale"
    check = b.client(deadline=15.0)
    present = names_present(check, "member-")
    for name, outcome in writers.outcomes.items():
        if not isinstance(outcome, Exception):
            assert name in present, f"{name}: acknowledged, then lost"
            continue
        assert isinstance(outcome, DeadlineExceeded) and outcome.applied is not False \
            or name not in present, f"{name}: answered not applied, yet stored: {outcome}"
        retried = check.request(Op.CREATE, object=service(name), requestId=writers.rids[name])
        assert retried["metadata"]["name"] == name  # never AlreadyExists: applied once


def test_a_write_in_flight_when_quorum_is_lost_is_answered_as_of_unknown_outcome_and_applied_once(  # noqa: E501
        pair: tuple[Host, Host], etcd_cluster: EtcdCluster) -> None:
    a, _ = pair
    client = a.client(timeout=1.0, deadline=3.0)
    client.create(service("quorum-warm"))
    leader = etcd_cluster.leader()
    for i in etcd_cluster.alive():
        if i != leader:
            etcd_cluster.kill(i)
    # a client that measured no round trip yet waits its whole timeout (2.5 s), longer than
    # the registry's etcd request (1.5 s): it gets the registry's answer, not a timeout
    fresh = a.client(timeout=2.5, deadline=4.0)
    with pytest.raises(DeadlineExceeded) as lost:
        fresh.request(Op.CREATE, object=service("quorum-1"), requestId="quorum-1")
    assert lost.value.applied is None, lost.value  # it reached etcd's leader: unknown
    etcd_cluster.heal()
    again = a.client(deadline=15.0)
    created = again.request(Op.CREATE, object=service("quorum-1"), requestId="quorum-1")
    assert created["metadata"]["name"] == "quorum-1"  # never AlreadyExists


# -- the epoch ----------------------------------------------------------------------------


def test_a_prefix_wiped_while_both_registries_run_gets_one_new_epoch_and_informers_relist(
        pair: tuple[Host, Host], etcd_cluster: EtcdCluster,
        informer_on: Callable[[Host, RecordingHandler], Informer]) -> None:
    a, b = pair
    ca, cb = a.client(), b.client()
    ca.create(service("wipe-before"))
    old = ca.ping()["epoch"]
    informers = [informer_on(host, RecordingHandler()) for host in pair]
    prefix = a.env["ECSM_ACTORS_STORE_ETCD_PREFIX"].encode()
    with etcd_cluster.client() as etcd:
        etcd.delete(prefix, prefix_end(prefix))

    def new_epochs() -> bool:
        epochs = {ca.ping()["epoch"], cb.ping()["epoch"]}
        return len(epochs) == 1 and old not in epochs

    wait_until(new_epochs, timeout=10, what="both registries on one new epoch")
    created = cb.create(service("wipe-after"))
    for informer in informers:
        wait_until(lambda i=informer: i.keys() == ["default/wipe-after"], timeout=10,
                   what="the informer to hold only what the new epoch holds")
        assert informer.stats()["relists"] >= 2
        assert informer.resource_version("default/wipe-after") == rv_of(created)
    assert ca.get(KIND, "default", "wipe-after") == created


def test_a_batch_larger_than_one_etcd_txn_sent_through_both_registries_at_once_is_applied_once(  # noqa: E501
        pair: tuple[Host, Host]) -> None:
    a, b = pair
    ca, cb = a.client(deadline=15.0), b.client(deadline=15.0)
    writes = [{"op": "CREATE", "object": service(f"big{i:03d}")} for i in range(130)]
    outcomes = race((ca, lambda c: c.request(Op.BATCH, writes=writes, requestId="big-1")),
                    (cb, lambda c: c.request(Op.BATCH, writes=writes, requestId="big-1")))
    assert sorted(replayed for _, replayed in outcomes) == [False, True], [
        (type(r).__name__, replayed) for r, replayed in outcomes]
    assert outcomes[0][0] == outcomes[1][0]
    assert all(r["ok"] for r in outcomes[0][0]["results"])


def test_a_write_whose_answer_was_lost_does_not_make_the_store_serve_reads_as_if_quorum_were_lost(  # noqa: E501
        etcd_cluster: EtcdCluster, etcd_prefix: str) -> None:
    """A member dying under a write loses its answer (DeadlineExceeded); the cluster keeps
    its quorum, only electing a leader for a moment: reads wait for it, never stale."""
    store = EtcdStore(etcd_cluster.client(), prefix=etcd_prefix)
    try:
        store.write(Op.CREATE, object=service("lost-answer"))
        txn, status = store.client.txn, store.client.status

        def answer_lost(*args: Any, **kwargs: Any) -> Any:
            store.client.txn = txn  # type: ignore[method-assign]
            raise DeadlineExceeded("etcd store unavailable: the connection broke; the "
                                   "write may or may not have been applied", applied=None)

        def electing() -> dict[str, Any]:
            store.client.status = status  # type: ignore[method-assign]
            return {**status(), "leader": 0}  # the survivors still electing a leader

        store.client.txn = answer_lost  # type: ignore[method-assign]
        store.client.status = electing  # type: ignore[method-assign]
        with pytest.raises(DeadlineExceeded):
            store.write(Op.UPDATE, object=service("lost-answer", replicas=3))
        assert store.get(KIND, "default", "lost-answer")
        assert not store.take_stale()
    finally:
        store.close()
