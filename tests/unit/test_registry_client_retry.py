"""The registry client's retry arithmetic: each attempt's timeout follows the measured round
trip (RFC 6298) between a floor and the client's timeout, backs off when attempts time out,
and the pause before a retry is a bounded, jittered exponential; request ids are unique."""

from __future__ import annotations

import random
import re

import pytest

from ecsm_actors.clock import FakeClock
from ecsm_actors.registry import retry as retry_module
from ecsm_actors.registry.retry import Backoff, RttEstimator, new_request_id


def measure(rtt: RttEstimator, clock: FakeClock, round_trip: float, times: int) -> None:
    for _ in range(times):
        sent = clock.now()
        clock.advance(round_trip)
        rtt.observe(clock.now() - sent)


def test_before_any_round_trip_is_measured_an_attempt_waits_its_whole_timeout() -> None:
    assert RttEstimator(cap=5.0).rto() == 5.0  # a fresh CLI on a 2 s link: no early retry
    assert RttEstimator(cap=0.5).rto() == 0.5


def test_on_a_one_second_link_an_attempt_waits_more_than_the_round_trip() -> None:
    clock, rtt = FakeClock(), RttEstimator(cap=5.0)
    measure(rtt, clock, 1.0, 10)
    assert 1.0 < rtt.rto() <= 5.0


def test_on_a_local_socket_an_attempt_waits_the_floor_of_a_fifth_of_a_second() -> None:
    clock, rtt = FakeClock(), RttEstimator(cap=5.0)
    measure(rtt, clock, 0.0004, 10)
    assert rtt.rto() == pytest.approx(0.2)


def test_the_timeout_follows_a_link_that_slows_down_and_never_exceeds_the_cap() -> None:
    clock, rtt = FakeClock(), RttEstimator(cap=5.0)
    measure(rtt, clock, 0.001, 10)
    fast = rtt.rto()
    measure(rtt, clock, 0.8, 1)
    assert rtt.rto() > 0.8 > fast  # one slow sample: the variation alone covers it
    measure(rtt, clock, 3.0, 20)
    assert 3.0 < rtt.rto() < 5.0
    measure(rtt, clock, 9.0, 5)
    assert rtt.rto() == 5.0


def test_timeouts_double_the_wait_until_an_answer_is_measured() -> None:
    clock, rtt = FakeClock(), RttEstimator(cap=5.0)
    measure(rtt, clock, 0.001, 10)
    waits = []
    for _ in range(6):
        waits.append(rtt.rto())
        rtt.timed_out()
    assert waits == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0])
    measure(rtt, clock, 0.001, 1)
    assert rtt.rto() == pytest.approx(0.2)


def test_the_pause_before_a_retry_grows_exponentially_and_stays_within_its_bound() -> None:
    backoff, rng = Backoff(base=0.05, cap=2.0), random.Random(7)
    for retry in range(1, 40):
        bound = min(2.0, 0.05 * 2 ** (retry - 1))
        pauses = [backoff.delay(retry, rng) for _ in range(200)]
        assert all(0.0 <= p <= bound for p in pauses)
        assert max(pauses) > bound * 0.8  # full jitter: the whole range is used
        assert min(pauses) < bound * 0.2


def test_clients_that_fail_together_do_not_retry_together() -> None:
    backoff, rng = Backoff(base=0.05, cap=2.0), random.Random(11)
    pauses = sorted(backoff.delay(6, rng) for _ in range(100))
    assert len({round(p, 3) for p in pauses}) > 90


def test_request_ids_are_short_allowed_text_and_never_repeat() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9._:/-]{1,64}", i) for i in ids)
    prefix = ids[0].split(".")[0]
    assert len(prefix) == 16  # 96 random bits
    assert all(i.startswith(prefix + ".") for i in ids)  # one process, one prefix


def test_a_forked_child_draws_request_ids_of_its_own() -> None:
    parent = new_request_id()
    retry_module._forget_request_ids()  # what os.fork runs in the child
    child = new_request_id()
    assert child.split(".")[0] != parent.split(".")[0]
    assert child.endswith(".1")  # its own counter
