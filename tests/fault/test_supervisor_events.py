"""The supervisor says why it restarted a child: a ``Child`` event in the registry for
the watchdog's kill (with its cause) and for the exit that followed."""

from __future__ import annotations

import os
import signal

import pytest

from tests.fault.test_supervisor import Daemon, beating
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import start_registry

pytestmark = pytest.mark.timeout(60)


def test_a_watchdog_kill_and_the_restart_are_recorded_as_events(
        processes: Processes) -> None:
    _, registry = start_registry(processes)
    d = Daemon(processes, [beating("frozen")]).start()
    first = d.row("frozen")["pid"]
    os.kill(first, signal.SIGSTOP)
    d.wait_row("frozen", lambda r: r["state"] == "RUNNING" and r["pid"] != first,
               timeout=10, what="the frozen child replaced")

    def recorded() -> dict[str, dict]:
        return {r["reason"]: r for r in registry.list_events("default", kind="Child",
                                                             name="frozen")}

    events = wait_until(lambda: {"Killing", "Restarting"} <= set(recorded()) and recorded(),
                        timeout=10, what="the supervisor's events about frozen")
    assert events["Killing"]["type"] == "Warning"
    assert f"pid {first}" in events["Killing"]["message"]
    assert "no liveness report" in events["Killing"]["message"]
    assert "SIGKILL" in events["Restarting"]["message"]
    assert events["Restarting"]["source"]["component"] == "supervisor"
    registry.close()
