"""Benchmark of admission and preemption in the service controller (not collected by pytest).

Run: ``.venv/bin/python tests/bench/bench_preemption.py [--reps 5] [--services 1000]``.

1. **Time to Available** (simulator with 3 nodes of 1 GiB for containers, registry and
   ``controller service`` as processes; the test harness's fast settings: poll 0.1 s,
   containers start 0.2 s after deployment): a priority-1000 service of three 512 MiB
   instances scaled from 0 to 3, from the registry write until it is Available with its
   rollout complete, on empty nodes and on nodes filled by two services of priority 1
   and 5 (the first is preempted, then restored when the critical one goes back to 0).
   Target: full ≤ 2 × empty (medians).
2. **Controller CPU per admission decision** with ``--services`` ECSMServices (64 MiB
   each, priorities 0..9) on 10 nodes filled but for 20 instances: the controller
   process is stopped and the benchmark runs the same Reconciler in-process (real
   simulator and registry over their sockets) for new priority-1000 services of one
   instance: the first 20 fit, the next ones preempt. It prints the CPU (process time) of
   the decision alone (restore, admit, preempt: reading the room, the registry list and
   ECSM's containers when it preempts, writing the records), of the whole pass, and of a
   steady pass of an existing service for comparison.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ecsm_actors.controllers.service.controller import ServiceReconciler  # noqa: E402
from ecsm_actors.ecsm.clientset import Clientset  # noqa: E402
from tests import service_harness as h  # noqa: E402
from tests.helpers import Processes, wait_until  # noqa: E402

MIB = 1 << 20


def service(name: str, priority: int, replicas: int, memory: str = "512Mi",
            pool: list[str] | None = None) -> dict[str, Any]:
    obj = h.service(name, replicas=replicas, pool=pool)
    obj["spec"]["template"]["resources"] = {"limits": {"memory": memory}}
    obj["spec"]["priority"] = priority
    return obj


def running(stack: h.Stack, name: str) -> int:
    return h.totals(stack.admin, f"default.{name}.")[1]


def scale_up_time(stack: h.Stack, replicas: int = 3) -> float:
    start = time.monotonic()
    stack.registry.apply(service("crit", 1000, replicas))
    wait_until(lambda: h.settled(stack.registry, "crit") and running(stack, "crit") == replicas,
               timeout=30, interval=0.005, what="crit Available")
    return time.monotonic() - start


def scale_down(stack: h.Stack, victims: dict[str, int]) -> None:
    stack.registry.apply(service("crit", 1000, 0))
    wait_until(lambda: h.totals(stack.admin, "default.crit.")[0] == 0
               and all(running(stack, n) == k for n, k in victims.items()),
               timeout=30, what="crit at 0, victims back")


def time_to_available(reps: int) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix="ea-bp-", dir="/tmp"))
    run_dir.chmod(0o700)
    procs = Processes(run_dir)
    try:
        stack = h.start_stack(procs, nodes=3, start_delay=0.2, controller=False)
        for n in ("node-1", "node-2", "node-3"):
            stack.admin.set_node_memory(n, 1 << 30)
        stack.start_controller()
        stack.registry.apply(service("crit", 1000, 0))
        wait_until(lambda: h.settled(stack.registry, "crit"), timeout=20, what="crit at 0")
        empty = []
        for _ in range(reps):
            empty.append(scale_up_time(stack))
            scale_down(stack, {})
        stack.registry.apply(service("low", 1, 3))
        stack.registry.apply(service("mid", 5, 3))
        wait_until(lambda: running(stack, "low") == running(stack, "mid") == 3, timeout=30,
                   what="nodes full")
        full = []
        for _ in range(reps):
            full.append(scale_up_time(stack))
            assert running(stack, "low") == 0 and running(stack, "mid") == 3
            scale_down(stack, {"low": 3, "mid": 3})
        stack.close()
        return {"empty": empty, "full": full}
    finally:
        procs.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


class Context:
    """What the Reconciler needs of the runtime's context, over a real registry client."""

    def __init__(self, registry: Any, config: Any) -> None:
        self.registry, self.config, self.kind = registry, config, h.KIND

    def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return dict(self.registry.update_status(obj))


class Meter:
    """Process time spent in a wrapped callable (re-entrant calls counted once)."""

    def __init__(self) -> None:
        self.total = 0.0

    def wrap(self, fn: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.process_time() - start
        return wrapped


def decision_cpu(count: int, reps: int) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix="ea-bq-", dir="/tmp"))
    run_dir.chmod(0o700)
    procs = Processes(run_dir)
    nodes = [f"node-{i}" for i in range(1, 11)]
    try:
        stack = h.start_stack(procs, nodes=10, start_delay=0.05, controller=False)
        per_node = -(-count // 10)
        for n in nodes:  # room for every service's instance, and 20 more
            stack.admin.set_node_memory(n, (per_node + 2) * 64 * MIB)
        stack.start_controller()
        for i in range(count):
            stack.registry.apply(service(f"svc-{i}", i % 10, 1, "64Mi", nodes))
        wait_until(lambda: h.totals(stack.admin, "default.svc-")[1] == count, timeout=300,
                   interval=0.5, what=f"{count} services running")
        assert stack.controller is not None
        procs.kill(stack.controller)
        stack.controller.wait(timeout=10)

        cfg = h.config(run_dir)
        reconciler = ServiceReconciler(cfg, Clientset.from_config(cfg))
        ctx = Context(stack.registry, cfg)
        decide, act = Meter(), Meter()
        capacity = reconciler._capacity
        capacity.run = decide.wrap(capacity.run)  # type: ignore[method-assign]
        reconciler._actuator.apply = act.wrap(  # type: ignore[method-assign]
            reconciler._actuator.apply)

        def one_pass(name: str) -> tuple[float, float]:
            decide.total = act.total = 0.0
            start = time.process_time()
            reconciler.reconcile(ctx, f"default/{name}")  # type: ignore[arg-type]
            return time.process_time() - start, decide.total - act.total

        steady = [one_pass(f"svc-{i}")[0] for i in range(reps * 4)]
        fits, preempts = [], []
        for k in range(20 + reps):
            stack.registry.apply(service(f"crit-{k}", 1000, 1, "64Mi", nodes))
            whole, decision = one_pass(f"crit-{k}")
            (fits if k < 20 else preempts).append((whole, decision))
        given = (h.get(stack.registry, f"crit-{20 + reps - 1}")["status"]
                 .get("preemptionsGiven") or [])
        stack.close()
        return {"steady": steady, "fits": fits, "preempts": preempts,
                "preempted": [g["victim"] for g in given]}
    finally:
        procs.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


def ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.2f} ms, max {max(values) * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--services", type=int, default=1000)
    args = parser.parse_args()

    t = time_to_available(args.reps)
    empty, full = statistics.median(t["empty"]), statistics.median(t["full"])
    print("time to Available, priority-1000 service scaled 0 -> 3 (3 x 512 MiB):")
    print(f"  empty nodes: {ms(t['empty'])}")
    print(f"  full nodes (preempting 3 instances of priority 1): {ms(t['full'])}")
    print(f"  ratio full / empty (medians): {full / empty:.2f}x (target <= 2x)")

    c = decision_cpu(args.services, args.reps)
    print(f"controller CPU, {args.services} services on 10 nodes (in-process Reconciler):")
    print(f"  steady pass of an existing service: {ms(c['steady'])}")
    print(f"  scale-up that fits: decision {ms([d for _, d in c['fits']])}; "
          f"whole pass {ms([w for w, _ in c['fits']])}")
    print(f"  scale-up that preempts one instance: decision "
          f"{ms([d for _, d in c['preempts']])}; whole pass "
          f"{ms([w for w, _ in c['preempts']])}")
    print(f"  victims of the last one: {', '.join(c['preempted'])}")


if __name__ == "__main__":
    main()
