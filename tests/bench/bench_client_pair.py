"""The registry client's CPU a call, this code against another tree's, call by call in one process.

Run: ``.venv/bin/python tests/bench/bench_client_pair.py BASE_TREE [--rounds R] [--n N]
[--ops get,update,create]`` — BASE_TREE a checkout of the code before
(``git clone -q . /tmp/base``).

Two client processes measured alternately differ by their own noise (the same code
against itself: 0.96-0.99x in blocks of 100 calls); here both clients live in this
process and alternate call by call, against one registry (BASE_TREE's), so that the
caches, the load and the scheduler treat them alike (the same code against itself:
0.99-1.005x). The base tree's package is copied under another name, its imports renamed,
into a temporary directory. Printed per op: each client's thread CPU a call (median of
the rounds, range), the ratio this / base (median of the rounds' ratios, range), wall p50.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ecsm_actors.registry.client import RegistryClient  # noqa: E402
from tests.bench.bench_registry import PY, value  # noqa: E402

BASE_PACKAGE = "ecsm_actors_base"


def copy_renamed(tree: Path, into: Path) -> None:
    """``tree``'s package as :data:`BASE_PACKAGE` in ``into`` (imports and the client
    sockets' monitor addresses renamed, so that both clients' sockets coexist)."""
    target = into / BASE_PACKAGE
    shutil.copytree(tree / "ecsm_actors", target,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for path in target.rglob("*.py"):
        text = re.sub(r"\becsm_actors\b", BASE_PACKAGE, path.read_text())
        path.write_text(text.replace("ecsm-registry-monitor.", "ecsm-registry-monitor-base."))


def call(client: Any, op: str, tag: str, state: dict[str, Any], k: int) -> None:
    if op == "get":
        client.get("ECSMService", "pair", tag)
    elif op == "update":
        obj = state[tag]
        obj["spec"]["deploymentStrategy"]["replicas"] = 2 + k % 3  # always a change
        state[tag] = client.update(obj)
    else:
        client.create(value(f"{tag}-{k}", namespace="pair"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("base", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--n", type=int, default=200, help="calls per client per round")
    parser.add_argument("--ops", default="get,update,create")
    args = parser.parse_args()
    ops = args.ops.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="ea-bench-pair-", dir="/tmp"))
    tmp.chmod(0o700)
    run_dir = tmp / "run"
    run_dir.mkdir(mode=0o700)
    copy_renamed(args.base.resolve(), tmp)
    sys.path.insert(0, str(tmp))
    base_client = importlib.import_module(f"{BASE_PACKAGE}.registry.client")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env.update(ECSM_ACTORS_RUN_DIR=str(run_dir), ECSM_ACTORS_LOG_LEVEL="WARNING",
               PYTHONPATH=str(args.base.resolve()))
    registry = subprocess.Popen([PY, "-m", "ecsm_actors", "registry"], env=env,
                                cwd=args.base)
    endpoint = f"ipc://{run_dir}/registry.sock"
    try:
        clients = {"base": base_client.RegistryClient(endpoint, timeout=60),
                   "this": RegistryClient(endpoint, timeout=60)}
        state = {tag: c.create(value(tag, namespace="pair")) for tag, c in clients.items()}
        cpu: dict[tuple[str, str], list[float]] = {}
        wall: dict[tuple[str, str], list[float]] = {}
        clock, k = time.thread_time_ns, 0
        for rnd in range(args.rounds):
            for op in ops:
                spent = {"base": 0, "this": 0}
                walls: dict[str, list[int]] = {"base": [], "this": []}
                for i in range(args.n):
                    for tag in ("base", "this") if (i + rnd) % 2 == 0 else ("this", "base"):
                        k += 1
                        w, c = time.perf_counter_ns(), clock()
                        call(clients[tag], op, tag, state, k)
                        spent[tag] += clock() - c
                        walls[tag].append(time.perf_counter_ns() - w)
                for tag in spent:
                    cpu.setdefault((op, tag), []).append(spent[tag] / args.n / 1e3)
                    wall.setdefault((op, tag), []).append(statistics.median(walls[tag]) / 1e3)
        print(f"RegistryClient, this code / {args.base}: {args.rounds} rounds of {args.n} "
              f"calls each, alternating call by call, load {os.getloadavg()[0]:.2f}; "
              "thread CPU us a call, median of the rounds [range]")
        for op in ops:
            base, this = cpu[(op, "base")], cpu[(op, "this")]
            ratios = [t / b for b, t in zip(base, this, strict=True)]
            print(f"  {op:7} base {statistics.median(base):6.1f} [{min(base):.1f}-{max(base):.1f}]"
                  f"  this {statistics.median(this):6.1f} [{min(this):.1f}-{max(this):.1f}]"
                  f"  this/base {statistics.median(ratios):.3f}x "
                  f"[{min(ratios):.3f}-{max(ratios):.3f}]  wall p50 "
                  f"{statistics.median(wall[(op, 'base')]):.0f} / "
                  f"{statistics.median(wall[(op, 'this')]):.0f} us")
        for client in clients.values():
            client.close()
    finally:
        registry.terminate()
        registry.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
