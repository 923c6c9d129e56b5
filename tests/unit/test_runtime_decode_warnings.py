"""The runtime's log of undecodable peer answers: one WARNING per cause, then at most one
per minute with a count; no traceback; the key is still retried with backoff."""

from __future__ import annotations

import logging

import pytest

from ecsm_actors.errors import EcsmDecodeError
from tests.unit.test_runtime import Rig, raise_

pytestmark = pytest.mark.timeout(10)


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_decode_error_repeated_on_every_retry_is_one_warning_a_minute(
        caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(threshold=3)
    caplog.set_level(logging.DEBUG, logger="ecsm_actors.runtime")
    deep = EcsmDecodeError("failed to decode generic response: JSON nested too deep "
                           "(raw response: '[[[[')", cause="JSON nested too deep")
    for _ in range(6):
        rig.run(raise_(deep))
        assert rig.next_ready_after() is not None  # retried with backoff
    assert len(warnings(caplog)) == 1
    assert warnings(caplog)[0].exc_info is None
    assert "result=error error=EcsmDecodeError" in warnings(caplog)[0].getMessage()
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and "result=error"
             in r.getMessage()]
    assert len(debug) == 5  # every outcome is still logged, below WARNING
    assert rig.registry.condition("default/a")["reason"] == "ReconcileFailing"
    rig.clock.advance(61)
    rig.run(raise_(deep))
    assert len(warnings(caplog)) == 2
    assert "and 5 more like it" in warnings(caplog)[1].getMessage()


def test_each_cause_gets_its_own_first_warning(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig()
    caplog.set_level(logging.INFO)
    for cause in ("JSON nested too deep", "not an HTTP reply", "JSON nested too deep"):
        rig.run(raise_(EcsmDecodeError(f"{cause}: ...", cause=cause)))
        rig.next_ready_after()
    assert len(warnings(caplog)) == 2


def test_the_limiter_remembers_a_bounded_number_of_causes() -> None:
    from ecsm_actors.runtime.ratelimit import WarningLimiter

    now = [0.0]
    limiter = WarningLimiter(interval=60, clock=lambda: now[0], max_causes=3)
    assert [limiter.admit(c) for c in "abcab"] == [0, 0, 0, None, None]
    assert limiter.admit("d") == 0 and limiter.admit("a") == 0  # "a" was forgotten
    now[0] = 61
    assert limiter.admit("d") == 0 and limiter.admit("a") == 0
