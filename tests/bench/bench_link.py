"""Ground-link benchmark: ``ecsm-cli`` through the link emulator at 250 ms each way,
against a direct baseline (the same commands on loopback, no emulator) in the same run.

Run: ``.venv/bin/python tests/bench/bench_link.py [--quick] [--only SECTION ...]
[--mode remote|plain] [--code DIR]``

Every figure is a real registry process and real ``ecsm-cli`` processes (HOME in a
temporary directory); the emulator is :mod:`tests.link_emulator`. Sections:

* ``command``: wall time of a registry command (``get esvc NAME``) through the link
  minus the same command direct (the CLI's own start), in round trips; in ``remote``
  mode through the link agent, started by a first command that is not counted;
* ``apply``: ``apply -f`` of 50 manifests, the same difference in round trips;
* ``list``: ``get esvc`` of 1,000 objects, seconds and round trips;
* ``stall`` / ``reset``: share of ~40 mixed commands (create, get, apply, delete) that
  succeed with a 5 s stall every 20 s / a reset of every connection every 10 s (mean);
* ``watch``: a ``watch`` through the link, the link stalled 5 s while an object is
  written: time from the end of the stall to the change printed;
* ``curve``: cost of CURVE per request on loopback: ``PING`` p50 over CURVE (the remote
  endpoint) vs plain TCP to the same registry; ``tests/bench/bench_curve.py`` has more.

Modes: ``remote`` (the registry's CURVE remote endpoints, a client key authorized with
``ecsm-operator keys``, the CLI given ``ECSM_ACTORS_REGISTRY[_EVENTS]``,
``ECSM_ACTORS_SERVER_KEY``, ``ECSM_ACTORS_CLIENT_KEY``); ``plain`` (the registry's own
endpoints on plain loopback TCP, the CLI given ``--registry``: how a crew had to do it
before the remote endpoint existed). ``--code DIR`` runs the registry and the CLI from
another checkout (e.g. ``git archive`` of an older commit), for before → after figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.link_emulator import LinkEmulator  # noqa: E402

PY = sys.executable
DELAY = 0.25
RTT = 2 * DELAY
CLI = "import sys; from ecsm_actors.cli.ecsm_cli import main; sys.exit(main())"
OPERATOR = "import sys; from ecsm_actors.cli.operator import main; sys.exit(main())"


def report(name: str, figure: str, ratio: str = "", target: str = "") -> None:
    print(f"  {name:<44} {figure:>14}  {ratio:<34} {target}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def manifest(name: str, replicas: int = 1) -> str:
    return (f"apiVersion: ecsm.sh/v1\nkind: ECSMService\nmetadata:\n  name: {name}\n"
            f"spec:\n  deploymentStrategy:\n    type: Dynamic\n    replicas: {replicas}\n"
            f"    nodePool: [node-1, node-2]\n  template:\n    image: app@1.0#sylixos\n")


def service(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"deploymentStrategy": {"type": "Dynamic", "replicas": 1,
                                            "nodePool": ["node-1", "node-2"]},
                     "template": {"image": "app@1.0#sylixos"}}}


class Bench:
    """A registry in a temporary run dir, and the environments through which crews reach
    it: direct (loopback) and through the emulated link."""

    def __init__(self, mode: str, code: Path, work: Path) -> None:
        self.mode, self.code, self.work = mode, code, work
        self.run_dir = work / "run"
        self.run_dir.mkdir(mode=0o700)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.homes: list[Path] = []
        self.plain = (free_port(), free_port())
        env = {"ECSM_ACTORS_REGISTRY_ENDPOINT": f"tcp://127.0.0.1:{self.plain[0]}",
               "ECSM_ACTORS_REGISTRY_EVENTS_ENDPOINT": f"tcp://127.0.0.1:{self.plain[1]}"}
        if mode == "remote":
            self.remote = (free_port(), free_port())
            env = {"ECSM_ACTORS_REGISTRY_REMOTE_ENDPOINT": f"tcp://127.0.0.1:{self.remote[0]}",
                   "ECSM_ACTORS_REGISTRY_REMOTE_EVENTS_ENDPOINT":
                       f"tcp://127.0.0.1:{self.remote[1]}",
                   **env}
        self.registry_env = env
        log = open(work / "registry.log", "wb")  # noqa: SIM115
        self.registry = subprocess.Popen([PY, "-m", "ecsm_actors", "registry"],
                                         env=self.env(env), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(self.registry)
        self.client = self.registry_client()
        deadline = time.monotonic() + 20
        while True:
            try:
                self.client.ping()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline or self.registry.poll() is not None:
                    raise RuntimeError("the registry did not start: see "
                                       f"{work / 'registry.log'}") from None
                time.sleep(0.05)
        if mode == "remote":
            self.server_key = self.operator("keys", "show").strip().split()[-1]
            keys = self.cli_raw(self.home("keys"), {}, "keys", "generate", "--out",
                                str(work / "crew.key"))
            public = keys.stdout.decode().strip().split()[-1]
            self.operator("keys", "authorize", "crew", public, "--role", "write")
            secrets = sorted(work.glob("crew.key*_secret")) or sorted(work.glob("crew*secret*"))
            self.client_key = str(secrets[0] if secrets else work / "crew.key")

    def env(self, extra: dict[str, str] | None = None, home: Path | None = None
            ) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
        home = home or self.work / "home"
        env.update({"ECSM_ACTORS_RUN_DIR": str(self.run_dir), "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": str(self.code), "HOME": str(home),
                    "XDG_RUNTIME_DIR": str(home / "x")})
        env.update(extra or {})
        if extra and "ECSM_ACTORS_REGISTRY" in extra:  # a crew on the ground: no run dir
            del env["ECSM_ACTORS_RUN_DIR"]
        return env

    def registry_client(self) -> Any:
        sys.path.insert(0, str(self.code))
        from ecsm_actors.registry.client import RegistryClient
        return RegistryClient(f"tcp://127.0.0.1:{self.plain[0]}", timeout=30.0)

    def operator(self, *args: str) -> str:
        proc = subprocess.run([PY, "-c", OPERATOR, *args], env=self.env(self.registry_env),
                              capture_output=True, cwd=self.code, timeout=60)
        if proc.returncode:
            raise RuntimeError(f"ecsm-operator {' '.join(args)}: {proc.stderr.decode()}")
        return proc.stdout.decode()

    def home(self, name: str) -> Path:
        home = self.work / f"home-{name}"
        (home / "x").mkdir(parents=True, exist_ok=True, mode=0o700)
        self.homes.append(home)
        return home

    def crew(self, name: str, ports: tuple[int, int]) -> Crew:
        """A crew's environment to the registry's endpoints at ``ports`` (the registry's
        own, or the emulator's routes to them)."""
        req, events = (f"tcp://127.0.0.1:{p}" for p in ports)
        if self.mode == "remote":
            extra = {"ECSM_ACTORS_REGISTRY": req, "ECSM_ACTORS_REGISTRY_EVENTS": events,
                     "ECSM_ACTORS_SERVER_KEY": self.server_key,
                     "ECSM_ACTORS_CLIENT_KEY": self.client_key}
        else:
            extra = {"ECSM_ACTORS_REGISTRY": req,
                     "ECSM_ACTORS_REGISTRY_EVENTS_ENDPOINT": events}
        return Crew(self, self.home(name), extra)

    def endpoints(self) -> tuple[int, int]:
        return self.remote if self.mode == "remote" else self.plain

    def link(self, **params: float) -> LinkEmulator:
        return LinkEmulator(list(self.endpoints()), log_dir=self.work, delay=DELAY,
                            **params)

    def cli_raw(self, home: Path, extra: dict[str, str], *args: str, stdin: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([PY, "-c", CLI, *args], env=self.env(extra, home),
                              input=stdin.encode() if stdin is not None else None,
                              capture_output=True, cwd=self.code, timeout=timeout)

    def close(self) -> None:
        for home in self.homes:  # link agents, if any: by the pid each one wrote
            for info in home.glob("x/ecsm-cli/link/*/agent.json"):
                with contextlib.suppress(Exception):
                    os.kill(int(json.loads(info.read_text())["pid"]), 9)
        with contextlib.suppress(Exception):
            self.client.close()
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()


class Crew:
    def __init__(self, bench: Bench, home: Path, extra: dict[str, str]) -> None:
        self.bench, self.home, self.extra = bench, home, extra

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120
            ) -> tuple[int, str, str, float]:
        start = time.monotonic()
        proc = self.bench.cli_raw(self.home, self.extra, *args, stdin=stdin, timeout=timeout)
        return (proc.returncode, proc.stdout.decode(), proc.stderr.decode(),
                time.monotonic() - start)

    def ok(self, *args: str, stdin: str | None = None) -> float:
        code, _, err, seconds = self.run(*args, stdin=stdin)
        if code:
            raise RuntimeError(f"ecsm-cli {' '.join(args)}: exit {code}: {err.strip()}")
        return seconds

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([PY, "-c", CLI, *args],
                                env=self.bench.env(self.extra, self.home),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=self.bench.code, start_new_session=True)
        self.bench.procs.append(proc)
        return proc


def paired(direct: Crew, remote: Crew, args: tuple[str, ...], n: int) -> tuple[float, float]:
    """Medians of ``n`` runs each, direct and through the link taking turns (a shared
    machine's load then weighs on both alike)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(n):
        times[0].append(direct.ok(*args))
        times[1].append(remote.ok(*args))
    return statistics.median(times[0]), statistics.median(times[1])


# -- sections --------------------------------------------------------------------------


def section_command(b: Bench, direct: Crew, remote: Crew, quick: bool) -> None:
    b.client.create(service("web", "default"))
    args = ("get", "esvc", "web")
    direct.ok(*args)  # first commands start the link agents (not counted)
    remote.ok(*args)
    n = 3 if quick else 7
    t_direct, t_link = paired(direct, remote, args, n)
    report("registry command (get esvc web), direct", f"{t_direct:.2f} s")
    report("same through the link (250 ms each way)", f"{t_link:.2f} s",
           f"+{(t_link - t_direct) / RTT:.1f} round trips", "≤ 1.5 round trips")


def section_apply(b: Bench, direct: Crew, remote: Crew, quick: bool) -> None:
    def docs(ns: str) -> str:
        return "---\n".join(manifest(f"{ns}-{i}") for i in range(50))

    t_direct = direct.ok("apply", "-n", "apply-direct", "-f", "-", stdin=docs("d"))
    t_link = remote.ok("apply", "-n", "apply-link", "-f", "-", stdin=docs("l"))
    report("apply -f of 50 manifests, direct", f"{t_direct:.2f} s")
    report("same through the link", f"{t_link:.2f} s",
           f"+{(t_link - t_direct) / RTT:.1f} round trips", "≤ 3 round trips")


def section_list(b: Bench, direct: Crew, remote: Crew, quick: bool) -> None:
    for i in range(1000):
        b.client.create(service(f"big-{i:04}", "big"))
    args = ("get", "esvc", "-n", "big")
    n = 1 if quick else 3
    t_direct, t_link = paired(direct, remote, args, n)
    report("get esvc of 1,000 objects, direct", f"{t_direct:.2f} s")
    report("same through the link", f"{t_link:.2f} s",
           f"+{(t_link - t_direct) / RTT:.1f} round trips")


def mixed_commands(crew: Crew, count: int, prefix: str
                   ) -> tuple[int, list[str], list[float]]:
    """``count`` commands in a cycle create → get → apply (changed) → delete; returns
    (succeeded, the last line of each failure, each command's seconds)."""
    ok, failures, seconds = 0, [], []
    for i in range(count):
        name = f"{prefix}-{i // 4}"
        step = i % 4
        if step == 0:
            args, stdin = ("create", "-n", "mix", "-f", "-"), manifest(name)
        elif step == 1:
            args, stdin = ("get", "esvc", "-n", "mix", name), None
        elif step == 2:
            args, stdin = ("apply", "-n", "mix", "-f", "-"), manifest(name, replicas=2)
        else:
            args, stdin = ("delete", "esvc", "-n", "mix", name), None
        code, _, err, took = crew.run(*args, stdin=stdin, timeout=180)
        seconds.append(took)
        if code == 0:
            ok += 1
        else:
            failures.append(f"{args[0]}: {(err.strip().splitlines() or ['?'])[-1][:100]}")
    return ok, failures, seconds


def section_faults(b: Bench, quick: bool, which: str, count: int | None) -> None:
    count = count or (20 if quick else 40)
    params = {"stall_every": 20.0, "stall_for": 5.0} if which == "stall" else \
        {"reset_every": 10.0}
    with b.link(**params) as link:
        crew = b.crew(f"faults-{which}", tuple(link.ports))  # type: ignore[arg-type]
        start = time.monotonic()
        ok, failures, seconds = mixed_commands(crew, count, which)
        elapsed = time.monotonic() - start
        stats = link.stats()
    what = "a 5 s stall every 20 s" if which == "stall" else "a reset every 10 s"
    events = f"{stats['stalls']} stalls" if which == "stall" else \
        f"{stats['reset_events']} reset events, {stats['resets']} connections reset"
    report(f"commands succeeding with {what}", f"{ok}/{count} = {100 * ok / count:.0f} %",
           f"{elapsed:.0f} s, {events}", "100 %")
    report("  seconds per command: p50 / max", f"{statistics.median(seconds):.1f} / "
           f"{max(seconds):.1f} s")
    for line in sorted(set(failures)):
        print(f"      failed ({failures.count(line)}x): {line}")


def section_watch(b: Bench, quick: bool) -> None:
    with b.link() as link:
        crew = b.crew("watch", tuple(link.ports))  # type: ignore[arg-type]
        proc = crew.popen("watch", "esvc", "-n", "w")
        lines: list[tuple[float, str]] = []

        def read() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                lines.append((time.monotonic(), raw.decode().rstrip()))

        threading.Thread(target=read, daemon=True).start()

        def printed(name: str, timeout: float) -> float | None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for t, line in lines:
                    if f"/{name} " in line + " ":
                        return t
                time.sleep(0.01)
            return None

        # The watch is ready once it prints a change (writes repeated until then).
        for i in range(60):
            b.client.create(service(f"ready-{i}", "w"))
            if printed(f"ready-{i}", 2.0) is not None:
                break
        else:
            raise RuntimeError("the watch printed nothing")
        time.sleep(2.0)  # past a heartbeat: no catch-up of the watch is in flight
        link.blackout()
        stalled_at = time.monotonic()
        b.client.create(service("during-stall", "w"))
        while time.monotonic() < stalled_at + 5.0:
            time.sleep(0.05)
        link.restore()
        restored = time.monotonic()
        seen = printed("during-stall", 60.0)
        alive = proc.poll() is None
        proc.kill()
        err = proc.stderr.read().decode().strip() if proc.stderr else ""
    if seen is None:
        report("watch prints again after a 5 s stall", "never",
               f"watch {'alive' if alive else 'exited'}; {err[-80:]}", "≤ 1 heartbeat + 1 RTT")
    else:
        report("watch prints again after a 5 s stall", f"{seen - restored:.2f} s",
               f"= {(seen - restored) / RTT:.1f} round trips", "≤ 1 heartbeat + 1 RTT")


def section_curve(b: Bench, quick: bool) -> None:
    if b.mode != "remote":
        report("CURVE cost per request", "n/a", "no remote endpoint in plain mode")
        return
    sys.path.insert(0, str(b.code))
    from ecsm_actors import curve
    from ecsm_actors.registry.client import RegistryClient

    keys = curve.ClientKeys.load(b.server_key, b.client_key)
    plain = RegistryClient(f"tcp://127.0.0.1:{b.plain[0]}", timeout=10.0)
    secured = RegistryClient(f"tcp://127.0.0.1:{b.remote[0]}", timeout=10.0, curve=keys)
    n = 500 if quick else 2000
    ratios, p_plain, p_curve = [], [], []
    try:
        for _ in range(3 if quick else 5):
            figures = []
            for client in (plain, secured):
                client.ping()
                times = []
                for _ in range(n):
                    t = time.perf_counter()
                    client.ping()
                    times.append(time.perf_counter() - t)
                figures.append(statistics.median(times))
            p_plain.append(figures[0])
            p_curve.append(figures[1])
            ratios.append(figures[1] / figures[0])
    finally:
        plain.close()
        secured.close()
    report("PING p50 on loopback, plain TCP", f"{statistics.median(p_plain) * 1e6:.0f} µs")
    report("PING p50 on loopback, CURVE", f"{statistics.median(p_curve) * 1e6:.0f} µs",
           f"{(statistics.median(ratios) - 1) * 100:+.1f} % (median of rounds)", "≤ +10 %")


SECTIONS = ("command", "apply", "list", "stall", "reset", "watch", "curve")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer commands and rounds")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--count", type=int, default=None,
                        help="commands per fault section (default 40, 20 with --quick)")
    parser.add_argument("--mode", choices=("remote", "plain"), default="remote")
    parser.add_argument("--code", type=Path, default=ROOT,
                        help="checkout whose registry and CLI run (default: this one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ea-link-", dir="/tmp"))
    bench = None
    try:
        bench = Bench(args.mode, args.code.resolve(), work)
        print(f"bench_link: mode {args.mode}, code {args.code}, one-way delay {DELAY} s "
              f"(RTT {RTT} s){', quick' if args.quick else ''}", flush=True)
        only = set(args.only)
        if only & {"command", "apply", "list"}:
            with bench.link() as link:
                direct = bench.crew("direct", bench.endpoints())
                remote = bench.crew("link", tuple(link.ports))  # type: ignore[arg-type]
                for name in ("command", "apply", "list"):
                    if name in only:
                        globals()[f"section_{name}"](bench, direct, remote, args.quick)
        for which in ("stall", "reset"):
            if which in only:
                section_faults(bench, args.quick, which, args.count)
        if "watch" in only:
            section_watch(bench, args.quick)
        if "curve" in only:
            section_curve(bench, args.quick)
    finally:
        if bench is not None:
            bench.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
