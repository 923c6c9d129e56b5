"""A short drill, end to end: the whole system heals from every kind of fault, under
capacity pressure (nodes too small for every service: priorities decide who runs).

Runs ``ecsm-operator drill`` as a user would (its own process, which starts a supervisor
in its own process group); the drill cleans up after itself and reports any process it
left behind as a failed invariant. The test kills the drill's process group at teardown
in case the drill itself is killed by the timeout.

The timeline lasts 14 s: the first faults cycle through every kind at a pace that fits
the duration, so a seed whose 14 s schedule holds one fault of each kind (every window at
least 1 s), a kill of each of the four children and more than ten desired-state changes
proves as much as a longer run (this seed: 13 faults and 17 changes; the test below
checks the schedule). Longer drills are the README's (``ecsm-operator drill --duration
5m``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ecsm_actors.drill.schedule import CHILDREN, FAULT_KINDS, ActionKind, make_schedule

SEED, DURATION, SERVICES = 20240158, 14, 20


def test_the_fixed_seed_exercises_every_kind_of_fault() -> None:
    schedule = make_schedule(SEED, DURATION, SERVICES, pressure=True)
    assert {a.kind for a in schedule.faults()} == set(FAULT_KINDS)
    assert {a.target for a in schedule.faults() if a.kind is ActionKind.KILL} == set(CHILDREN)
    assert min(a.p["seconds"] for a in schedule.faults() if "seconds" in a.p) >= 1.0
    assert len(schedule.changes()) > 10


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_short_drill_heals_from_every_fault_and_holds_every_invariant(tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    cmd = [sys.executable, "-c", "import sys; from ecsm_actors.cli.operator import main; "
           "sys.exit(main())", "drill", "--duration", f"{DURATION}s", "--seed", str(SEED),
           "--services", str(SERVICES), "--pressure", "--report", str(report_file)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=220)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    assert "RESULT: PASS" in text
    assert "drill: capacity pressure: " in text

    report = json.loads(report_file.read_text())
    assert report["ok"] is True and report["seed"] == SEED
    names = {r["name"] for r in report["invariants"]}
    assert names == {"acknowledged-writes", "ecsm-matches-spec", "no-orphans",
                     "status-matches-reality", "hpa-within-bounds", "no-leftover-processes",
                     "capacity-by-priority"}
    assert all(r["ok"] and r["checked"] > 0 for r in report["invariants"]), report["invariants"]
    assert report["quiesced"] is True and report["timeToQuiescence"] is not None
    # A fault finds its victim at run time (a child mid-restart is skipped): allow two.
    injected = {f["label"].split(":")[0] for f in report["faults"]}
    assert len(injected) >= len(FAULT_KINDS) - 2, (report["faults"], report["notes"])
    assert report["recoveriesObserved"] >= len(report["faults"]) // 2
    assert report["writes"]["acknowledged"] > SERVICES
    assert sum(report["changes"].values()) > 10
    assert not Path(report["runDir"]).exists(), "a passing drill removes its run dir"
