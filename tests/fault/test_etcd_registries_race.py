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
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.config import ControllerSettings, load_config
from ecsm_actors.errors import DeadlineExceeded, NotFound, RegistryError
from ecsm_actors.informer import Informer
from ecsm_actors.protocol import Op
from ecsm_actors.registry.client import RegistryClient, Subscriber
from tests.etcd_cluster import EtcdCluster
from tests.helpers import Processes, wait_until
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
    created = a.client().create(service("occ", annotations={"log": ""}))
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
    again = cb.request(Op.CREATE, object=service("lost-reply"), requestId="lost-reply-1")
    assert cb.last_replayed and again == first


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
