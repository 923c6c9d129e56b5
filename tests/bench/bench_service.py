"""Benchmark of the service controller (not collected by pytest).

Run: ``.venv/bin/python tests/bench/bench_service.py [--counts 100,1000] [--workers 2]``.
For each count N it starts a fresh stack (ECSM simulator with 10 nodes, registry,
``controller service``), applies N ECSMServices at once (Dynamic, 1 replica) and prints:

* convergence time: from the first apply until every object is Available with its
  rollout complete (status written by the controller, checked against the simulator);
* reconciles/s while converging and in steady state (outcome lines of the controller's
  log, one per reconcile);
* ECSM calls per steady-state reconcile (the simulator's request counter over a window,
  minus the benchmark's own admin calls, divided by the reconciles in that window).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests import service_harness as h  # noqa: E402
from tests.helpers import Processes, wait_until  # noqa: E402


def reconciles(run_dir: Path) -> int:
    total = 0
    for path in (run_dir / "test-logs").glob("controller-service*.log"):
        total += sum(1 for line in path.read_text(errors="replace").splitlines()
                     if " result=" in line and "key=" in line)
    return total


def available(stack: h.Stack) -> int:
    items = stack.registry.list("ECSMService", "default").items
    return sum(1 for obj in items if _done(obj))


def _done(obj: dict) -> bool:
    status = obj.get("status") or {}
    conds = {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or ()}
    return (status.get("observedGeneration") == obj["metadata"].get("generation")
            and conds.get("Available", ("",))[0] == "True"
            and conds.get("Progressing") == ("True", "NewRevisionAvailable"))


def run(count: int, workers: int, drift: float, window: float) -> dict[str, float]:
    run_dir = Path(tempfile.mkdtemp(prefix="ea-bsv-", dir="/tmp"))
    run_dir.chmod(0o700)
    procs = Processes(run_dir)
    try:
        stack = h.start_stack(procs, nodes=10, start_delay=0.05, controller=True,
                              ECSM_ACTORS_CONTROLLER_WORKERS=str(workers),
                              ECSM_ACTORS_SERVICE_DRIFT_INTERVAL=str(drift),
                              ECSM_ACTORS_SERVICE_POLL_INTERVAL="0.2",
                              ECSM_ACTORS_SERVICE_NODE_REFRESH_INTERVAL="5",
                              ECSM_ACTORS_LOG_LEVEL="INFO")
        pool = [f"node-{i}" for i in range(1, 11)]
        time.sleep(1.0)  # the controller's informer has listed the empty registry
        start = time.perf_counter()
        for i in range(count):
            stack.registry.apply(h.service(f"s{i:04d}", replicas=1, pool=pool))
        applied = time.perf_counter() - start
        wait_until(lambda: available(stack) == count, timeout=120 + count * 0.5,
                   interval=0.25, what=f"{count} services Available")
        converged = time.perf_counter() - start
        busy = reconciles(run_dir)

        # steady state: wait for the post-convergence rechecks to spread out
        time.sleep(drift * 1.5)
        before_req = stack.admin.state()["stats"]["requests"]
        before_rec = reconciles(run_dir)
        t0 = time.perf_counter()
        time.sleep(window)
        elapsed = time.perf_counter() - t0
        after_req = stack.admin.state()["stats"]["requests"]
        after_rec = reconciles(run_dir)
        steady = after_rec - before_rec
        ecsm_calls = after_req - before_req - 1  # minus the second state() call
        stack.close()
        return {"count": count, "apply_s": applied, "converge_s": converged,
                "converge_reconciles_per_s": busy / converged,
                "steady_reconciles_per_s": steady / elapsed,
                "ecsm_calls_per_steady_reconcile": ecsm_calls / max(1, steady)}
    finally:
        procs.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="100,1000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--drift", type=float, default=5.0,
                        help="service.drift_interval of the controller, seconds")
    parser.add_argument("--window", type=float, default=10.0,
                        help="steady-state measuring window, seconds")
    args = parser.parse_args()
    print(f"service controller: workers={args.workers} drift_interval={args.drift}s "
          f"(10 simulated nodes, 1 replica per service)")
    for count in (int(c) for c in args.counts.split(",")):
        r = run(count, args.workers, args.drift, args.window)
        print(f"  {count:5d} services: applied in {r['apply_s']:.2f}s, all Available after "
              f"{r['converge_s']:.2f}s; {r['converge_reconciles_per_s']:.0f} reconciles/s "
              f"converging, {r['steady_reconciles_per_s']:.0f} reconciles/s steady; "
              f"{r['ecsm_calls_per_steady_reconcile']:.2f} ECSM calls per steady reconcile")


if __name__ == "__main__":
    main()
