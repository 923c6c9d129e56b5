"""The supervisor's restart state machine and watchdog, on a fake clock (no processes)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from ecsm_actors.config import load_config
from ecsm_actors.errors import ConfigError
from ecsm_actors.protocol import Liveness
from ecsm_actors.supervisor.machine import (
    ChildMachine,
    ChildState,
    ExitStatus,
    Signal,
    Spawn,
)
from ecsm_actors.supervisor.spec import ChildSpec, ReadinessKind, RestartPolicy, spec_from_mapping

CRASH = ExitStatus(code=1)
KILLED = ExitStatus(signal=signal.SIGKILL)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def spec(**kw: object) -> ChildSpec:
    base: dict[str, object] = dict(
        name="c", argv=("x",), startsecs=1.0, backoff_base=0.2, backoff_cap=5.0,
        backoff_jitter=0.0, flap_restarts=100, flap_window=60.0, hold_down=30.0,
        stop_grace=2.0, ready_timeout=0.0,
    )
    base.update(kw)
    return ChildSpec(**base)  # type: ignore[arg-type]


def running(clock: FakeClock, pid: int = 100, **kw: object) -> ChildMachine:
    m = ChildMachine(spec(**kw), clock=clock, rng=lambda: 0.0)
    assert m.start() == [Spawn()]
    m.spawned(pid)
    assert m.ready()
    return m


def crash_quickly(m: ChildMachine, clock: FakeClock, pid: int) -> list[object]:
    """Respawn if scheduled, then die before startsecs."""
    if m.state == ChildState.BACKOFF:
        clock.now = m.next_deadline() or clock.now
        assert m.tick() == [Spawn()]
    m.spawned(pid)
    clock.advance(0.1)
    return list(m.exited(CRASH))


def test_a_child_goes_from_stopped_through_starting_to_running_when_ready() -> None:
    clock = FakeClock()
    m = ChildMachine(spec(), clock=clock)
    assert m.state == ChildState.STOPPED
    assert m.start() == [Spawn()]
    assert m.state == ChildState.STARTING
    m.spawned(42)
    assert m.pid == 42 and m.state == ChildState.STARTING
    assert m.ready() is True
    assert m.state == ChildState.RUNNING
    assert m.ready() is False  # only once


def test_a_crash_after_a_healthy_run_restarts_at_once_and_counts_a_restart() -> None:
    clock = FakeClock()
    m = running(clock)
    clock.advance(5)
    assert m.exited(KILLED) == [Spawn()]
    assert m.state == ChildState.STARTING
    assert m.restarts == 1
    assert str(m.last_exit) == "SIGKILL"


def test_quick_failures_back_off_exponentially_up_to_the_cap() -> None:
    clock = FakeClock()
    m = ChildMachine(spec(backoff_base=0.2, backoff_cap=1.0), clock=clock, rng=lambda: 0.0)
    m.start()
    delays = []
    for pid in range(1, 7):
        crash_quickly(m, clock, pid)
        assert m.state == ChildState.BACKOFF
        delays.append(round(m.timer_remaining() or 0.0, 6))
    assert delays == [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


def test_jitter_shortens_each_delay_by_at_most_the_jitter_fraction() -> None:
    clock = FakeClock()
    m = ChildMachine(spec(backoff_base=1.0, backoff_cap=100.0, backoff_jitter=0.25),
                     clock=clock, rng=lambda: 0.999)
    assert m.backoff_delay(1) == pytest.approx(0.75025)
    assert m.backoff_delay(3) == pytest.approx(4 * 0.75025)
    m0 = ChildMachine(m.spec, clock=clock, rng=lambda: 0.0)
    assert m0.backoff_delay(3) == 4.0


def test_nothing_restarts_before_the_backoff_delay_has_passed() -> None:
    clock = FakeClock()
    m = ChildMachine(spec(), clock=clock, rng=lambda: 0.0)
    m.start()
    crash_quickly(m, clock, 1)
    clock.advance(0.19)
    assert m.tick() == []
    clock.advance(0.02)
    assert m.tick() == [Spawn()]
    assert m.state == ChildState.STARTING


def test_a_healthy_run_resets_the_backoff() -> None:
    clock = FakeClock()
    m = ChildMachine(spec(), clock=clock, rng=lambda: 0.0)
    m.start()
    for pid in range(1, 4):
        crash_quickly(m, clock, pid)
    assert m.failures == 3
    clock.now = m.next_deadline() or 0
    m.tick()
    m.spawned(10)
    m.ready()
    clock.advance(1.5)
    assert m.exited(CRASH) == [Spawn()]
    assert m.failures == 0
    m.spawned(11)
    clock.advance(0.1)
    m.exited(CRASH)
    assert m.timer_remaining() == pytest.approx(0.2)


def test_a_run_that_never_became_ready_is_a_failed_start_however_long() -> None:
    clock = FakeClock()
    m = ChildMachine(spec(), clock=clock, rng=lambda: 0.0)
    m.start()
    m.spawned(1)
    clock.advance(10)
    m.exited(CRASH)
    assert m.state == ChildState.BACKOFF and m.failures == 1


def test_flapping_leads_to_hold_down_and_then_to_a_new_try() -> None:
    clock = FakeClock()
    m = ChildMachine(spec(flap_restarts=3, flap_window=60, hold_down=30, backoff_base=0.1),
                     clock=clock, rng=lambda: 0.0)
    m.start()
    for pid in range(1, 4):
        crash_quickly(m, clock, pid)
        assert m.state == ChildState.BACKOFF
    clock.now = m.next_deadline() or 0
    m.tick()
    m.spawned(4)
    clock.advance(0.1)
    m.exited(CRASH)
    assert m.state == ChildState.HOLD_DOWN
    assert "flapping" in m.reason
    clock.advance(29)
    assert m.tick() == []
    clock.advance(1.01)
    assert m.tick() == [Spawn()]
    assert m.state == ChildState.STARTING
    m.spawned(5)
    m.ready()
    clock.advance(2)
    assert m.exited(CRASH) == [Spawn()]  # the window starts afresh after a hold-down


def test_the_try_after_a_hold_down_starts_the_backoff_afresh() -> None:
    clock = FakeClock()
    m = ChildMachine(spec(flap_restarts=2, hold_down=5, backoff_base=0.1),
                     clock=clock, rng=lambda: 0.0)
    m.start()
    while m.state != ChildState.HOLD_DOWN:
        crash_quickly(m, clock, 1)
    clock.advance(5)
    assert m.tick() == [Spawn()]
    crash_quickly(m, clock, 2)
    assert m.state == ChildState.BACKOFF
    assert m.timer_remaining() == pytest.approx(0.1)
    assert m.hold_downs == 1


def test_restarts_spread_wider_than_the_window_are_not_flapping() -> None:
    clock = FakeClock()
    m = running(clock, flap_restarts=2, flap_window=10)
    for pid in range(2, 8):
        clock.advance(6)
        assert m.exited(CRASH) == [Spawn()]
        m.spawned(pid)
        m.ready()
    assert m.state == ChildState.RUNNING


def test_it_never_gives_up_unless_max_hold_downs_is_configured() -> None:
    def drive(m: ChildMachine, clock: FakeClock, rounds: int) -> None:
        m.start()
        for pid in range(rounds):
            if m.state in (ChildState.BACKOFF, ChildState.HOLD_DOWN):
                clock.now = m.next_deadline() or 0
                assert m.tick() == [Spawn()]
            if m.state == ChildState.EXITED:
                return
            m.spawned(pid)
            clock.advance(0.01)
            m.exited(CRASH)

    clock = FakeClock()
    forever = ChildMachine(spec(flap_restarts=2, hold_down=1), clock=clock, rng=lambda: 0.0)
    drive(forever, clock, 60)
    assert forever.state != ChildState.EXITED and forever.hold_downs >= 10

    clock = FakeClock()
    finite = ChildMachine(spec(flap_restarts=2, hold_down=1, max_hold_downs=2), clock=clock,
                          rng=lambda: 0.0)
    drive(finite, clock, 60)
    assert finite.state == ChildState.EXITED
    assert "gave up after 2 hold-downs" in finite.reason
    assert finite.next_deadline() is None


@pytest.mark.parametrize(("policy", "status", "restarted"), [
    (RestartPolicy.PERMANENT, ExitStatus(code=0), True),
    (RestartPolicy.PERMANENT, CRASH, True),
    (RestartPolicy.TRANSIENT, ExitStatus(code=0), False),
    (RestartPolicy.TRANSIENT, CRASH, True),
    (RestartPolicy.TRANSIENT, KILLED, True),
    (RestartPolicy.TEMPORARY, CRASH, False),
])
def test_the_restart_policy_decides_whether_an_exit_restarts(
        policy: RestartPolicy, status: ExitStatus, restarted: bool) -> None:
    clock = FakeClock()
    m = running(clock, policy=policy)
    clock.advance(5)
    actions = m.exited(status)
    assert (actions == [Spawn()]) is restarted
    assert (m.state == ChildState.EXITED) is not restarted


def test_a_watchdog_kill_of_a_transient_child_is_abnormal_even_with_code_zero() -> None:
    clock = FakeClock()
    m = running(clock, policy=RestartPolicy.TRANSIENT, heartbeat_deadline=1.0)
    clock.advance(1.5)
    assert m.tick() == [Signal(signum=signal.SIGKILL, reason=m.reason)]
    assert m.exited(ExitStatus(code=0)) == [Spawn()]


def test_stop_sends_term_then_kill_after_the_grace_and_ends_stopped() -> None:
    clock = FakeClock()
    m = running(clock, stop_grace=2.0)
    [term] = m.stop()
    assert isinstance(term, Signal) and term.signum == signal.SIGTERM
    assert m.state == ChildState.STOPPING
    clock.advance(1.9)
    assert m.tick() == []
    clock.advance(0.2)
    [kill] = m.tick()
    assert isinstance(kill, Signal) and kill.signum == signal.SIGKILL
    assert m.exited(KILLED) == []
    assert m.state == ChildState.STOPPED
    assert m.restarts == 0


def test_an_operator_stop_holds_the_child_until_started_again() -> None:
    clock = FakeClock()
    m = running(clock)
    m.stop(hold=True)
    m.exited(ExitStatus(signal=signal.SIGTERM))
    assert m.state == ChildState.STOPPED and m.held
    clock.advance(1000)
    assert m.tick() == [] and m.next_deadline() is None
    assert m.start() == [Spawn()]
    assert not m.held


def test_stopping_a_child_in_backoff_cancels_its_restart() -> None:
    clock = FakeClock()
    m = ChildMachine(spec(), clock=clock, rng=lambda: 0.0)
    m.start()
    crash_quickly(m, clock, 1)
    assert m.stop(hold=True) == []
    assert m.state == ChildState.STOPPED
    clock.advance(100)
    assert m.tick() == []


def test_restart_stops_gracefully_then_starts_again() -> None:
    clock = FakeClock()
    m = running(clock)
    [term] = m.restart()
    assert isinstance(term, Signal) and term.signum == signal.SIGTERM
    assert m.exited(ExitStatus(signal=signal.SIGTERM)) == [Spawn()]
    assert m.state == ChildState.STARTING and m.restarts == 1


def test_a_child_not_ready_in_time_is_killed_and_counted_as_a_failed_start() -> None:
    clock = FakeClock()
    m = ChildMachine(spec(ready_timeout=3.0), clock=clock, rng=lambda: 0.0)
    m.start()
    m.spawned(1)
    assert m.next_deadline() == pytest.approx(clock.now + 3.0)
    clock.advance(3.0)
    [kill] = m.tick()
    assert isinstance(kill, Signal) and kill.signum == signal.SIGKILL
    assert "not ready" in m.reason
    m.exited(KILLED)
    assert m.state == ChildState.BACKOFF and m.failures == 1


def test_a_silent_child_is_killed_once_its_heartbeat_is_overdue() -> None:
    clock = FakeClock()
    m = running(clock, heartbeat_deadline=1.5)
    report = Liveness(name="c", pid=100, ts=0.0)
    for _ in range(5):
        clock.advance(1.0)
        m.observe(report)
        assert m.tick() == []
    assert m.next_deadline() == pytest.approx(clock.now + 1.5)
    clock.advance(1.5)
    [kill] = m.tick()
    assert isinstance(kill, Signal) and kill.signum == signal.SIGKILL
    assert "no liveness report" in kill.reason
    assert m.tick() == [] and m.next_deadline() is None  # killed once, no busy loop


def test_a_reconcile_stuck_in_flight_past_its_limit_kills_the_child() -> None:
    clock = FakeClock()
    m = running(clock, reconcile_deadline=10.0)
    m.observe(Liveness(name="c", pid=100, ts=0.0, oldest_inflight_age=9.0))
    assert m.tick() == []
    m.observe(Liveness(name="c", pid=100, ts=0.0, oldest_inflight_age=10.5))
    [kill] = m.tick()
    assert "reconcile in flight" in kill.reason  # type: ignore[union-attr]


def test_a_child_above_its_memory_limit_is_killed() -> None:
    clock = FakeClock()
    m = running(clock, memory_limit=50 << 20)
    m.watchdog.observe_rss(40 << 20)
    assert m.tick() == []
    m.watchdog.observe_rss(60 << 20)
    [kill] = m.tick()
    assert "above the limit" in kill.reason  # type: ignore[union-attr]


def test_a_failed_spawn_is_a_failed_start_with_backoff() -> None:
    clock = FakeClock()
    m = ChildMachine(spec(), clock=clock, rng=lambda: 0.0)
    m.start()
    assert m.spawn_failed("no such file") == []
    assert m.state == ChildState.BACKOFF and m.reason == "no such file"
    assert str(m.last_exit) == "127"


def test_the_exit_status_names_the_signal() -> None:
    assert str(ExitStatus.from_returncode(-9)) == "SIGKILL"
    assert str(ExitStatus.from_returncode(3)) == "3"
    assert ExitStatus.from_returncode(0).normal


def test_a_child_table_entry_takes_its_defaults_from_the_configuration(tmp_path: Path) -> None:
    cfg = load_config(environ={"ECSM_ACTORS_SUPERVISOR_HEARTBEAT_DEADLINE": "1.5"})
    s = spec_from_mapping({"name": "w", "argv": ["python", "w.py"], "policy": "transient",
                           "readiness": {"kind": "liveness", "stat": "synced"},
                           "stop_grace": 0.5}, cfg.supervisor)
    assert s.heartbeat_deadline == 1.5 and s.stop_grace == 0.5
    assert s.policy == RestartPolicy.TRANSIENT
    assert s.readiness.kind == ReadinessKind.LIVENESS and s.readiness.stat == "synced"
    with pytest.raises(ConfigError, match="child 'w'.*stop_grace"):
        spec_from_mapping({"name": "w", "argv": ["x"], "stop_grace": "soon"}, cfg.supervisor)
    with pytest.raises(ConfigError, match="unknown keys"):
        spec_from_mapping({"name": "w", "argv": ["x"], "bogus": 1}, cfg.supervisor)
