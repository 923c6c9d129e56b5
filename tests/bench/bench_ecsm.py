"""Benchmark of the ECSM simulator and client (not collected by pytest).

Run: ``.venv/bin/python tests/bench/bench_ecsm.py [--seconds 2]``. Starts a simulator
process with 100 services (factor 1), then prints:

* simulator requests/s for a simple GET (``node/{id}``), ``GET service`` (a page of 100
  services) and ``GET container/service`` (10 services), with a raw keep-alive
  ``http.client`` connection (1 connection, then 4 concurrent connections);
* the client's overhead per call (Clientset call minus the raw request) and the pure
  decode cost of a 100-row page.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ecsm_actors.ecsm.types import ServiceRow, decode_page  # noqa: E402
from tests.ecsm_sim import running_simulator  # noqa: E402

HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}


def raw_rate(port: int, path: str, seconds: float, connections: int = 1) -> float:
    counts = [0] * connections
    deadline = time.perf_counter() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            conn.request("GET", path, headers=HEADERS)
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            counts[i] += 1
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def per_call(fn: Callable[[], object], seconds: float) -> float:
    """Mean seconds per call of ``fn`` over ``seconds``."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    secs = args.seconds
    with running_simulator("--nodes", "5", "--start-delay", "0") as sim:
        cs = sim.clientset()
        ids = [cs.services.create({"name": f"bench-{i:03d}", "image": {
            "ref": "app@1.0#sylixos", "action": "run", "config": None},
            "node": {"names": None}, "factor": 1, "policy": "dynamic"})["id"]
            for i in range(100)]
        node = cs.nodes.list_all()[0].id
        query10 = "&".join(f"serviceIds%5B%5D={i}" for i in ids[:10])
        paths = {
            "GET node/{id} (simple)": f"/api/v1/node/{node}",
            "GET service (100 rows)": "/api/v1/service?pageNum=1&pageSize=100",
            "GET container/service (10 svcs)":
                f"/api/v1/container/service?pageNum=1&pageSize=100&{query10}",
        }
        print(f"simulator throughput ({secs:.0f} s each, keep-alive http.client):")
        for label, path in paths.items():
            one = raw_rate(sim.port, path, secs)
            four = raw_rate(sim.port, path, secs, connections=4)
            print(f"  {label:34s} {one:8.0f} req/s (1 conn)  {four:8.0f} req/s (4 conns)")

        conn = http.client.HTTPConnection("127.0.0.1", sim.port)

        def raw(path: str) -> Callable[[], object]:
            def call() -> object:
                conn.request("GET", path, headers=HEADERS)
                return conn.getresponse().read()
            return call

        print("client overhead per call (Clientset minus raw http.client):")
        for label, path, fn in (
                ("nodes.get_by_id", paths["GET node/{id} (simple)"],
                 lambda: cs.nodes.get_by_id(node)),
                ("services.list(1, 100)", paths["GET service (100 rows)"],
                 lambda: cs.services.list(1, 100)),
                ("containers.list_by_service(10)", paths["GET container/service (10 svcs)"],
                 lambda: cs.containers.list_by_service(ids[:10], 1, 100))):
            t_raw = per_call(raw(path), secs / 2)
            t_client = per_call(fn, secs / 2)
            print(f"  {label:34s} raw {t_raw * 1e6:7.0f} us  client {t_client * 1e6:7.0f} us"
                  f"  overhead {(t_client - t_raw) * 1e6:6.0f} us")
        body = raw(paths["GET service (100 rows)"])()
        data = json.loads(body)["data"]  # type: ignore[arg-type]
        t_decode = per_call(lambda: decode_page(ServiceRow, data), secs / 2)
        print(f"  decode of a 100-row service page: {t_decode * 1e6:.0f} us")
        conn.close()
        cs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
