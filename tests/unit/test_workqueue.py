"""The workqueue contract, ported from client-go's queue, delaying queue and rate limiter
tests (``default_rate_limiters_test.go``: the item exponential, bucket and max-of limiters),
plus event-before-resync priority and draining shutdown. Fake clock, no threads."""

from __future__ import annotations

import random

import pytest

from ecsm_actors.clock import FakeClock
from ecsm_actors.workqueue import (
    BucketRateLimiter,
    ItemExponentialBackoff,
    MaxOfRateLimiter,
    WorkQueue,
    controller_rate_limiter,
)


def make(base: float = 1.0, cap: float = 60.0, jitter: float = 0.0) -> tuple[WorkQueue, FakeClock]:
    clock = FakeClock()
    backoff = ItemExponentialBackoff(base, cap, jitter, rng=random.Random(7))
    return WorkQueue(clock=clock, rate_limiter=backoff), clock


def ready_now(q: WorkQueue) -> str | None:
    key, shutdown = q.get(timeout=0)
    assert not shutdown
    return key


def drain_order(q: WorkQueue) -> list[str]:
    out = []
    while (key := ready_now(q)) is not None:
        out.append(key)
        q.done(key)
    return out


# -- the basic queue ------------------------------------------------------------------------


def test_keys_come_out_in_the_order_they_were_added() -> None:
    q, _ = make()
    for key in ("a", "b", "c"):
        q.add(key)
    assert drain_order(q) == ["a", "b", "c"]


def test_duplicates_collapse_while_waiting() -> None:
    q, _ = make()
    for _ in range(5):
        q.add("a")
    q.add("b")
    q.add("a")
    assert len(q) == 2
    assert drain_order(q) == ["a", "b"]


def test_keys_added_all_at_once_behave_as_added_one_by_one() -> None:
    q, _ = make()
    q.add("b")
    assert ready_now(q) == "b"  # in flight: runs once more after done
    q.add("a", resync=True)  # waiting at low priority: promoted
    q.add_all(["a", "b", "c", "c", "d"])
    assert len(q) == 3
    q.done("b")
    assert drain_order(q) == ["a", "c", "d", "b"]


def test_keys_added_all_at_once_wake_a_blocked_get() -> None:
    q, clock = make()
    clock.call_later(1.0, lambda: q.add_all(["x", "y"]))
    assert q.get() == ("x", False)


def test_a_key_being_processed_is_not_handed_to_a_second_worker() -> None:
    q, _ = make()
    q.add("a")
    assert ready_now(q) == "a"
    q.add("a")
    assert len(q) == 0
    assert ready_now(q) is None


def test_a_key_added_while_processing_runs_once_more_after_done() -> None:
    q, _ = make()
    q.add("a")
    assert ready_now(q) == "a"
    q.add("a")
    q.add("a")
    q.done("a")
    assert len(q) == 1
    assert ready_now(q) == "a"
    q.done("a")
    assert ready_now(q) is None


def test_done_of_a_key_never_handed_out_changes_nothing() -> None:
    q, _ = make()
    q.add("a")
    q.done("a")
    assert len(q) == 1
    assert drain_order(q) == ["a"]


def test_get_waits_for_its_timeout_and_returns_nothing() -> None:
    q, clock = make()
    start = clock.now()
    assert q.get(timeout=2.5) == (None, False)
    assert clock.now() == pytest.approx(start + 2.5)


def test_get_without_a_timeout_is_woken_by_an_add() -> None:
    q, clock = make()
    clock.call_later(3.0, lambda: q.add("late"))
    assert q.get() == ("late", False)


# -- delayed adds -----------------------------------------------------------------------------


def test_a_delayed_key_is_not_ready_before_its_delay() -> None:
    q, clock = make()
    q.add_after("a", 5.0)
    assert len(q) == 0 and q.delayed_len() == 1
    clock.advance(4.9)
    assert ready_now(q) is None
    clock.advance(0.1)
    assert ready_now(q) == "a"


def test_delayed_keys_become_ready_in_deadline_order() -> None:
    q, clock = make()
    q.add_after("late", 3.0)
    q.add_after("early", 1.0)
    q.add_after("middle", 2.0)
    clock.advance(10)
    assert drain_order(q) == ["early", "middle", "late"]


def test_a_blocked_get_wakes_exactly_at_the_next_deadline() -> None:
    q, clock = make()
    start = clock.now()
    q.add_after("a", 7.0)
    assert q.get(timeout=60) == ("a", False)
    assert clock.now() == pytest.approx(start + 7.0)


def test_the_earlier_deadline_of_a_key_added_twice_wins() -> None:
    q, clock = make()
    q.add_after("a", 10.0)
    q.add_after("a", 2.0)
    q.add_after("a", 5.0)
    assert q.delayed_len() == 1
    clock.advance(2.0)
    assert ready_now(q) == "a"
    q.done("a")
    clock.advance(20.0)
    assert ready_now(q) is None


def test_a_delay_of_zero_adds_at_once() -> None:
    q, _ = make()
    q.add_after("a", 0)
    assert ready_now(q) == "a"


def test_a_delayed_key_already_waiting_is_still_handed_out_once() -> None:
    q, clock = make()
    q.add("a")
    q.add_after("a", 1.0)
    clock.advance(1.0)
    assert drain_order(q) == ["a"]


# -- rate limiting ------------------------------------------------------------------------------


def test_backoff_doubles_per_failure_up_to_the_cap() -> None:
    backoff = ItemExponentialBackoff(0.1, 1.0)
    delays = [backoff.when("a") for _ in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff.num_requeues("a") == 6


def test_backoff_is_per_key_and_forget_starts_it_over() -> None:
    backoff = ItemExponentialBackoff(0.1, 10.0)
    backoff.when("a")
    backoff.when("a")
    assert backoff.when("b") == pytest.approx(0.1)
    backoff.forget("a")
    assert backoff.num_requeues("a") == 0
    assert backoff.when("a") == pytest.approx(0.1)


def test_jitter_stays_within_its_band_and_under_the_cap() -> None:
    backoff = ItemExponentialBackoff(1.0, 5.0, jitter=0.2, rng=random.Random(1))
    first = [ItemExponentialBackoff(1.0, 5.0, 0.2, random.Random(s)).when("a") for s in range(50)]
    assert all(0.8 <= d <= 1.2 for d in first)
    assert len(set(first)) > 1
    assert all(backoff.when("a") <= 5.0 for _ in range(20))


def test_a_huge_failure_count_does_not_overflow() -> None:
    backoff = ItemExponentialBackoff(0.1, 30.0)
    for _ in range(2000):
        delay = backoff.when("a")
    assert delay == 30.0


def test_rate_limited_adds_back_off_and_forget_resets_them() -> None:
    q, clock = make(base=1.0, cap=4.0)
    for expected in (1.0, 2.0, 4.0, 4.0):
        start = clock.now()
        q.add_rate_limited("a")
        assert q.get(timeout=100) == ("a", False)
        q.done("a")
        assert clock.now() - start == pytest.approx(expected)
    assert q.num_requeues("a") == 4
    q.forget("a")
    assert q.num_requeues("a") == 0
    start = clock.now()
    q.add_rate_limited("a")
    assert q.get(timeout=100) == ("a", False)
    assert clock.now() - start == pytest.approx(1.0)


def test_first_time_adds_are_never_throttled() -> None:
    q, _ = make(base=1.0)
    for i in range(1000):
        q.add(f"k{i}")
    assert len(q) == 1000
    assert len(drain_order(q)) == 1000


def test_a_failing_key_does_not_delay_the_others() -> None:
    q, _ = make(base=30.0, cap=30.0)
    q.add_rate_limited("failing")
    q.add("healthy")
    assert ready_now(q) == "healthy"


# -- the shared retry budget (client-go's BucketRateLimiter and MaxOfRateLimiter) -----------------


def test_the_bucket_lets_its_burst_through_then_one_retry_per_1_over_qps() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter(10, 3, clock=clock)
    delays = [bucket.when(f"k{i}") for i in range(6)]
    assert delays == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3])


def test_the_bucket_refills_at_qps_up_to_its_burst() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter(10, 3, clock=clock)
    for i in range(3):
        bucket.when(f"k{i}")
    clock.advance(0.2)  # two tokens back
    assert [bucket.when("a"), bucket.when("b"), bucket.when("c")] == pytest.approx([0, 0, 0.1])
    clock.advance(3600)  # never more than the burst saved up
    assert [bucket.when(f"x{i}") for i in range(4)] == pytest.approx([0, 0, 0, 0.1])


def test_a_bucket_reservation_is_kept_even_when_the_key_is_forgotten() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter(1, 1, clock=clock)
    assert bucket.when("a") == 0
    bucket.forget("a")
    assert bucket.when("a") == pytest.approx(1.0)
    assert bucket.num_requeues("a") == 0


def test_forgetting_a_key_gives_back_its_reservations_not_due_yet() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter(10, 1, clock=clock)
    assert [bucket.when(k) for k in ("a", "b", "c")] == pytest.approx([0, 0.1, 0.2])
    bucket.forget("b")  # b succeeded another way before its retry: 2 retries left ahead
    bucket.forget("c")
    assert bucket.when("d") == pytest.approx(0.1)


def test_a_retry_superseded_by_a_success_is_cancelled() -> None:
    q, clock = make(base=1.0)
    q.add_rate_limited("a")
    q.add("a")  # e.g. re-enqueued once its peer answered again
    assert ready_now(q) == "a"
    q.done("a")
    q.forget("a")  # it succeeded
    assert q.delayed_len() == 0
    assert q.get(timeout=10) == (None, False)


def test_after_a_mass_failure_heals_a_new_failure_waits_only_its_own_backoff() -> None:
    clock = FakeClock()
    limiter, bucket = controller_rate_limiter(base=0.05, cap=30, jitter=0, qps=10,
                                              burst=100, clock=clock)
    q = WorkQueue(clock=clock, rate_limiter=limiter)
    keys = [f"k{i}" for i in range(300)]
    for key in keys:  # the peer is down: every key fails and is retried rate-limited
        q.add_rate_limited(key)
    assert bucket.stats()["wait"] > 15
    for key in keys:  # the peer answers again: every key is re-added and succeeds
        q.add(key)
        assert ready_now(q) == key
        q.done(key)
        q.forget(key)
    assert q.delayed_len() == 0
    q.add_rate_limited("new")
    assert q.get(timeout=1) == ("new", False)


def test_a_bucket_with_qps_0_never_delays() -> None:
    bucket = BucketRateLimiter(0, 1, clock=FakeClock())
    assert {bucket.when(f"k{i}") for i in range(1000)} == {0.0}


def test_max_of_takes_the_longer_delay_and_asks_every_limiter() -> None:
    clock = FakeClock()
    backoff = ItemExponentialBackoff(1.0, 60.0)
    bucket = BucketRateLimiter(10, 1, clock=clock)
    limiter = MaxOfRateLimiter(backoff, bucket)
    assert limiter.when("a") == pytest.approx(1.0)  # backoff 1 s, bucket 0
    assert limiter.when("a") == pytest.approx(2.0)  # backoff 2 s, bucket 0.1 s
    assert bucket.when("b") == pytest.approx(0.2)  # both calls above reserved a token
    assert limiter.num_requeues("a") == 2
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == pytest.approx(1.0)


def test_the_bucket_delay_wins_when_many_keys_fail_at_once() -> None:
    clock = FakeClock()
    limiter, _ = controller_rate_limiter(base=0.05, cap=30, jitter=0, qps=10, burst=100,
                                         clock=clock)
    delays = [limiter.when(f"k{i}") for i in range(150)]
    assert delays[:100] == pytest.approx([0.05] * 100)  # the burst: the key's own backoff
    assert delays[100] == pytest.approx(0.1)
    assert delays[149] == pytest.approx(5.0)


def test_a_mass_failure_is_retried_at_no_more_than_qps_after_the_burst() -> None:
    clock = FakeClock()
    limiter, bucket = controller_rate_limiter(base=0.05, cap=30, jitter=0.1, qps=10,
                                              burst=100, clock=clock,
                                              rng=random.Random(3))
    q = WorkQueue(clock=clock, rate_limiter=limiter)
    start = clock.now()
    for i in range(1000):
        q.add_rate_limited(f"k{i}")
    handed_out: dict[int, int] = {}
    while True:  # every retry fails again: each key is re-added rate-limited
        key, _ = q.get(timeout=60)
        if key is None:
            break
        second = int(clock.now() - start)
        handed_out[second] = handed_out.get(second, 0) + 1
        q.done(key)
        if clock.now() - start < 120:
            q.add_rate_limited(key)
    assert handed_out[0] <= 100 + 10
    assert max(handed_out.values()) <= 100 + 10
    assert max(n for s, n in handed_out.items() if s >= 1) <= 10 + 1
    assert bucket.stats()["delayed"] > 0


def test_the_retry_budget_reports_its_tokens_and_the_wait_of_the_next_retry() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter(10, 5, clock=clock)
    assert bucket.stats() == {"qps": 10, "burst": 5, "tokens": 5, "wait": 0,
                              "reservations": 0, "delayed": 0}
    for i in range(7):
        bucket.when(f"k{i}")
    stats = bucket.stats()
    assert stats["tokens"] == pytest.approx(-2)
    assert stats["wait"] == pytest.approx(0.3)
    assert (stats["reservations"], stats["delayed"]) == (7, 2)


# -- priority -------------------------------------------------------------------------------------


def test_keys_from_events_are_served_before_keys_from_a_resync() -> None:
    q, _ = make()
    q.add("r1", resync=True)
    q.add("r2", resync=True)
    q.add("e1")
    q.add("e2")
    assert drain_order(q) == ["e1", "e2", "r1", "r2"]


def test_an_event_promotes_a_waiting_resync_key() -> None:
    q, _ = make()
    q.add("r1", resync=True)
    q.add("r2", resync=True)
    q.add("e1")
    q.add("r2")
    assert len(q) == 3
    assert drain_order(q) == ["e1", "r2", "r1"]


def test_a_resync_does_not_demote_a_waiting_event_key() -> None:
    q, _ = make()
    q.add("e1")
    q.add("r1", resync=True)
    q.add("e1", resync=True)
    assert drain_order(q) == ["e1", "r1"]


def test_a_key_promoted_while_processing_is_requeued_as_an_event() -> None:
    q, _ = make()
    q.add("a")
    assert ready_now(q) == "a"
    q.add("a", resync=True)
    q.add("a")
    q.add("r", resync=True)
    q.done("a")
    assert drain_order(q) == ["a", "r"]


# -- shutdown ------------------------------------------------------------------------------------


def test_after_shut_down_get_reports_shutdown_and_adds_are_ignored() -> None:
    q, _ = make()
    q.add("a")
    q.shut_down()
    q.add("b")
    q.add_after("c", 1)
    assert q.get(timeout=1) == (None, True)
    assert q.get() == (None, True)
    assert q.shutting_down()


def test_a_shut_down_queue_has_length_0_and_keeps_nothing_to_hand_out() -> None:
    q, _ = make()
    q.add("a")
    q.add("b")
    q.add_after("c", 1)
    in_flight = ready_now(q)
    assert in_flight is not None
    q.add(in_flight)  # dirty while processing
    q.shut_down()
    assert len(q) == 0 and q.delayed_len() == 0
    q.done(in_flight)
    assert len(q) == 0 and q.processing_len() == 0


def test_a_drained_queue_has_length_0() -> None:
    q, clock = make()
    q.add("a")
    q.add("waiting")
    a = ready_now(q)
    clock.call_later(1.0, lambda: q.done(a))  # type: ignore[arg-type]
    assert q.shut_down_with_drain(5.0) is True
    assert len(q) == 0


def test_a_plain_shut_down_cuts_a_draining_shutdown_short() -> None:
    q, clock = make()
    q.add("stuck")
    ready_now(q)
    start = clock.now()
    clock.call_later(1.0, q.shut_down)
    assert q.shut_down_with_drain(10.0) is False
    assert clock.now() - start == pytest.approx(1.0)
    assert q.processing_len() == 1  # still in flight: done() stays allowed
    q.done("stuck")
    assert q.get(timeout=0) == (None, True)


def test_a_blocked_get_returns_when_the_queue_shuts_down() -> None:
    q, clock = make()
    clock.call_later(1.0, q.shut_down)
    assert q.get() == (None, True)


def test_drain_returns_at_once_when_nothing_is_in_flight() -> None:
    q, clock = make()
    q.add("waiting")
    start = clock.now()
    assert q.shut_down_with_drain(10.0) is True
    assert clock.now() == start


def test_drain_waits_for_in_flight_keys_to_be_done() -> None:
    q, clock = make()
    q.add("a")
    q.add("b")
    a, b = ready_now(q), ready_now(q)
    assert a is not None and b is not None
    clock.call_later(1.0, lambda: q.done(a))
    clock.call_later(2.0, lambda: q.done(b))
    start = clock.now()
    assert q.shut_down_with_drain(10.0) is True
    assert clock.now() - start == pytest.approx(2.0)
    assert q.processing_len() == 0


def test_drain_gives_up_after_the_grace_period() -> None:
    q, clock = make()
    q.add("stuck")
    ready_now(q)
    start = clock.now()
    assert q.shut_down_with_drain(3.0) is False
    assert clock.now() - start == pytest.approx(3.0)


def test_a_key_added_during_drain_is_not_run_again() -> None:
    q, clock = make()
    q.add("a")
    ready_now(q)

    def add_again_then_done() -> None:
        q.add("a")
        q.done("a")

    clock.call_later(1.0, add_again_then_done)
    assert q.shut_down_with_drain(5.0) is True
    assert q.get(timeout=0) == (None, True)


# -- introspection -------------------------------------------------------------------------------


def test_the_age_of_the_oldest_in_flight_key_is_reported() -> None:
    q, clock = make()
    assert q.oldest_processing_age() == 0.0
    q.add("a")
    q.add("b")
    ready_now(q)
    clock.advance(5)
    ready_now(q)
    clock.advance(1)
    assert q.oldest_processing_age() == pytest.approx(6.0)
    assert q.processing_len() == 2
