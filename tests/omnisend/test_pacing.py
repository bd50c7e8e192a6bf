"""SlidingWindow, BrandLimiter and LimiterRegistry: never over the limit, never idle for nothing."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisync.clock import FakeClock
from omnisync.config.schema import load_schema
from omnisync.omnisend.pacing import BrandLimiter, LimiterRegistry, SlidingWindow, brand_digest
from tests.omnisend.virtual_clock import VirtualClock


def max_in_any_window(times: list[float], window: float) -> int:
    """The most events in any interval (s - window, s], as a server counting them sees it."""
    ordered = sorted(times)
    return max(
        (sum(1 for other in ordered if end - window < other <= end) for end in ordered),
        default=0,
    )


def fits(slots: list[float], candidate: float, limit: int, window: float) -> bool:
    """Reference check: no limit + 1 slots within less than ``window``."""
    merged = sorted([*slots, candidate])
    return all(
        merged[index + limit] - window >= merged[index] for index in range(len(merged) - limit)
    )


def reserve(window: SlidingWindow, now: float) -> float:
    """Book the earliest slot; how long to wait for it."""
    slot = window.earliest(now)
    window.book(slot)
    return slot - now


def test_window_books_up_to_the_limit_then_waits_for_the_oldest_to_leave() -> None:
    window = SlidingWindow(3, 10.0)
    assert [reserve(window, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert reserve(window, 0.0) == 10.0  # booked at 10, so callers never overshoot
    assert reserve(window, 4.0) == 6.0  # also at 10: the 3 at 0 all leave by then
    assert reserve(window, 4.0) == 6.0
    assert reserve(window, 4.0) == 16.0  # 3 booked at 10: next at 20


def test_window_penalty_pushes_every_slot_past_it() -> None:
    window = SlidingWindow(100, 60.0)
    window.penalise(30.0)
    assert reserve(window, 5.0) == 25.0
    window.penalise(10.0)  # an earlier pause never shortens a later one
    assert reserve(window, 6.0) == 24.0


def test_window_fills_a_gap_before_a_future_booking_when_it_is_safe() -> None:
    window = SlidingWindow(2, 10.0)
    window.book(20.0)  # someone waits for 20
    assert window.earliest(0.0) == 0.0  # two slots in [0, 20) keep every window at <= 2
    window.book(0.0)
    window.book(0.0)
    # Now a slot at 0..10 would put 3 in a window with the two at 0; after 10
    # the window (t-10, t] holds at most one of {0, 0} and 20 is 10 away.
    assert window.earliest(0.0) == 10.0
    assert fits([20.0, 0.0, 0.0], 10.0, 2, 10.0)


@settings(max_examples=150, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=5),
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=8.0, allow_nan=False),
            st.integers(min_value=1, max_value=4),
            st.booleans(),
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_window_matches_a_brute_force_reference(
    limit: int, steps: list[tuple[float, int, bool]]
) -> None:
    """Every slot keeps the invariant and is the earliest that does (out-of-order included)."""
    window_seconds = 10.0
    window = SlidingWindow(limit, window_seconds)
    now = 0.0
    booked: list[float] = []
    for advance, count, far_booking in steps:
        now += advance
        if far_booking:
            # A caller that books a slot in the future (like a tags call).
            later = window.earliest(now, not_before=now + 7.5)
            window.book(later)
            booked.append(later)
        for _ in range(count):
            live = [slot for slot in booked if slot > now - window_seconds]
            candidates = sorted(
                {now, *(slot for slot in live if slot >= now)}
                | {after(slot, window_seconds) for slot in live if slot + window_seconds >= now}
            )
            expected = next(c for c in candidates if fits(live, c, limit, window_seconds))
            slot = window.earliest(now)
            assert slot == expected
            window.book(slot)
            booked.append(slot)
    assert max_in_any_window(booked, window_seconds) <= limit


def after(slot: float, window: float) -> float:
    candidate = slot + window
    while candidate - window < slot:
        candidate = math.nextafter(candidate, math.inf)
    return candidate


def run_threads(
    clock: VirtualClock, workers: list[Callable[[], None]], *, timeout: float = 20.0
) -> None:
    def wrap(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            finally:
                clock.done()

        return run

    threads = [threading.Thread(target=wrap(work)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a worker thread hung"


def test_concurrent_threads_never_overshoot_either_limit_and_keep_it_busy() -> None:
    clock = VirtualClock(participants=6)
    limiter = BrandLimiter(10, 3, clock=clock, window_seconds=60.0, safety_margin=0.0)
    sent: list[tuple[float, str]] = []
    lock = threading.Lock()

    def worker(kinds: list[str]) -> Callable[[], None]:
        def run() -> None:
            for kind in kinds:
                limiter.acquire(kind)  # type: ignore[arg-type]
                with lock:
                    sent.append((clock.now(), kind))

        return run

    run_threads(
        clock,
        [worker(["general"] * 12) for _ in range(4)] + [worker(["tags"] * 5) for _ in range(2)],
    )
    general_times = [when for when, _ in sent]
    tag_times = [when for when, kind in sent if kind == "tags"]
    assert len(general_times) == 58
    assert max_in_any_window(general_times, 60.0) <= 10
    assert max_in_any_window(tag_times, 60.0) <= 3
    # Work-conserving: 58 requests at 10 per window need windows 0..5, so the
    # last one goes at 5 * 60 = 300 and not a second later.
    assert max(general_times) == 300.0


def test_a_tags_call_waiting_for_its_slot_does_not_hold_up_general_calls() -> None:
    clock = VirtualClock(participants=2)
    limiter = BrandLimiter(100, 1, clock=clock, window_seconds=60.0, safety_margin=0.0)
    general_sent: list[float] = []
    tags_sent: list[float] = []

    def tags() -> None:
        for _ in range(2):
            limiter.acquire("tags")
            tags_sent.append(clock.now())

    def general() -> None:
        clock.wait_for_sleepers()  # let the second tags call book 60 and sleep
        for _ in range(50):
            limiter.acquire("general")
            general_sent.append(clock.now())

    run_threads(clock, [tags, general])
    assert tags_sent == [0.0, 60.0]
    assert general_sent == [0.0] * 50


def test_a_429_pauses_threads_already_waiting_for_a_slot() -> None:
    clock = VirtualClock(participants=2)
    limiter = BrandLimiter(1, 1, clock=clock, window_seconds=10.0, safety_margin=0.0)
    sent: list[float] = []

    def waiter() -> None:
        limiter.acquire("general")
        sent.append(clock.now())
        limiter.acquire("general")  # books 10, sleeps towards it
        sent.append(clock.now())

    def rate_limited() -> None:
        clock.wait_for_sleepers()
        limiter.penalise(25.0)  # a 429 arrives at 0 asking for 25 s

    run_threads(clock, [waiter, rate_limited])
    assert sent == [0.0, 25.0]


def test_acquire_reports_the_seconds_waited() -> None:
    clock = FakeClock()
    limiter = BrandLimiter(2, 1, clock=clock, window_seconds=60.0, safety_margin=0.5)
    assert limiter.acquire("general").waited == 0.0
    assert limiter.acquire("tags").waited == 0.0
    assert limiter.acquire("general").waited == 60.5
    assert clock.sleeps == [60.5]
    assert (
        limiter.acquire("tags").waited == 0.0
    )  # at 60.5 the first tags call has left both windows
    assert limiter.acquire("tags").waited == 60.5  # the tags window is full until 121
    assert clock.now() == 121.0


def test_a_request_counts_from_when_its_answer_came_back() -> None:
    clock = FakeClock()
    limiter = BrandLimiter(1, 1, clock=clock, window_seconds=10.0, safety_margin=0.0)
    slot = limiter.acquire("tags")
    assert (slot.kind, slot.at, slot.waited) == ("tags", 0.0, 0.0)
    clock.advance(3.0)  # in flight: Omnisend may have counted it as late as 3
    limiter.done(slot)
    assert limiter.acquire("tags").waited == 10.0  # at 13, not 10: a window after 3
    assert clock.now() == 13.0


def test_a_slot_not_used_is_given_back() -> None:
    clock = FakeClock()
    limiter = BrandLimiter(1, 1, clock=clock, window_seconds=10.0, safety_margin=0.0)
    limiter.done(limiter.acquire("tags"), sent=False)
    assert limiter.acquire("tags").waited == 0.0
    assert clock.sleeps == []


def test_a_thread_waiting_for_a_slot_sees_a_booking_moved_meanwhile() -> None:
    clock = VirtualClock(participants=2)
    limiter = BrandLimiter(1, 1, clock=clock, window_seconds=10.0, safety_margin=0.0)
    sent: list[float] = []

    def slow_request() -> None:
        slot = limiter.acquire("general")
        clock.sleep(4.0)  # the answer takes 4 s
        limiter.done(slot)

    def next_request() -> None:
        clock.wait_for_sleepers()  # the first request is in flight
        limiter.acquire("general")  # books 10 against the send time 0, sleeps towards it
        sent.append(clock.now())

    run_threads(clock, [slow_request, next_request])
    assert sent == [14.0]


def test_registry_shares_one_limiter_per_brand_and_keeps_no_key() -> None:
    registry = LimiterRegistry(clock=FakeClock())
    first = registry.limiter("http://127.0.0.1:1/api", "key-one-SECRET")
    assert registry.limiter("http://127.0.0.1:1/api/", "key-one-SECRET") is first
    assert registry.limiter("http://127.0.0.1:1/api", "key-two-SECRET") is not first
    assert registry.limiter("http://127.0.0.1:2/api", "key-one-SECRET") is not first
    assert len(registry) == 3
    assert "SECRET" not in repr(first)
    assert "SECRET" not in repr(vars(registry))
    assert brand_digest("key-one-SECRET") != brand_digest("key-two-SECRET")


def test_a_brand_asked_for_with_new_limits_paces_at_them_from_then_on() -> None:
    # A hot reload lowering rate_limit (a 429's advice) once changed nothing until a
    # restart: the brand's limiter kept the limits it was first asked for.
    clock = FakeClock()
    registry = LimiterRegistry(clock=clock)
    limiter = registry.limiter("http://127.0.0.1:1/api", "key-SECRET")  # 400 and 60
    assert [limiter.acquire("general").waited for _ in range(3)] == [0.0] * 3
    lowered = registry.limiter(
        "http://127.0.0.1:1/api", "key-SECRET", requests_per_minute=4, tags_per_minute=1
    )
    assert lowered is limiter  # in place: every client of the brand shares it
    # The 3 requests already sent count against the new limit of 4 a window.
    assert limiter.acquire("tags").waited == 0.0
    assert limiter.acquire("general").waited == 60.5
    assert limiter.acquire("tags").waited == 0.0  # at 60.5 the first tags call has left
    assert limiter.acquire("tags").waited == 60.5  # one tags call a window
    # Raised again, the next request need not wait for the old window to pass.
    registry.limiter("http://127.0.0.1:1/api", "key-SECRET", requests_per_minute=400)
    assert [limiter.acquire("general").waited for _ in range(50)] == [0.0] * 50
    assert limiter.acquire("tags").waited == 0.0
    assert len(registry) == 1


def test_a_thread_waiting_for_a_slot_meets_limits_lowered_meanwhile() -> None:
    clock = VirtualClock(participants=2)
    registry = LimiterRegistry(clock=clock)
    limiter = registry.limiter("http://127.0.0.1:1/api", "key", requests_per_minute=2)
    sent: list[float] = []

    def waiter() -> None:
        limiter.acquire("general")
        limiter.penalise(10.0)  # a 429 asking for 10 s
        limiter.acquire("general")  # books 10 under the limit of 2, sleeps towards it
        sent.append(clock.now())

    def reload() -> None:
        clock.wait_for_sleepers()
        registry.limiter("http://127.0.0.1:1/api", "key", requests_per_minute=1)

    run_threads(clock, [waiter, reload])
    assert sent == [60.5]  # woken at 10, it looks again: one a window, after the one at 0


def test_new_limits_that_could_never_admit_a_request_are_refused_and_change_nothing() -> None:
    clock = FakeClock()
    registry = LimiterRegistry(clock=clock)
    limiter = registry.limiter("http://127.0.0.1:1/api", "key", requests_per_minute=2)
    with pytest.raises(ValueError, match="a window needs"):
        registry.limiter("http://127.0.0.1:1/api", "key", requests_per_minute=5, tags_per_minute=0)
    assert [limiter.acquire("general").waited for _ in range(3)] == [0.0, 0.0, 60.5]  # still 2


def test_invalid_limits_are_refused() -> None:
    # A window needs a limit of at least 1: the config schema refuses anything less.
    limits = load_schema()["$defs"]["rate_limit"]["properties"]
    assert {name: limits[name]["minimum"] for name in limits} == {
        "requests_per_minute": 1,
        "tags_per_minute": 1,
    }
    with pytest.raises(ValueError, match="safety_margin"):
        BrandLimiter(clock=FakeClock(), safety_margin=-1.0)


def test_batch_creation_leaves_headroom_for_polls_and_tags_calls() -> None:
    clock = FakeClock()
    limiter = BrandLimiter(10, 3, clock=clock, window_seconds=60.0, safety_margin=0.0)
    # No tags calls yet: batches may use all but the 1-request headroom.
    assert [limiter.acquire("batches").waited for _ in range(9)] == [0.0] * 9
    assert limiter.acquire("general").waited == 0.0  # a poll still finds its slot at once
    assert clock.now() == 0.0
    assert limiter.acquire("batches").waited == 60.0  # the window is full now: 10 of 10
    assert clock.now() == 60.0  # the slots at 0 have just left the window
    assert limiter.acquire("tags").waited == 0.0
    # While tags calls are being made, batches leave them their 3 slots too:
    # 10 - 1 - 3 = 6 per window, of which the one at 60 is already used.
    assert [limiter.acquire("batches").waited for _ in range(5)] == [0.0] * 5
    assert limiter.acquire("tags").waited == 0.0
    assert limiter.acquire("general").waited == 0.0
    assert (
        limiter.acquire("batches").waited == 60.0
    )  # the 7th must wait, though 1 overall slot is free


def test_batch_creation_keeps_a_fair_share_when_tags_may_use_the_whole_limit() -> None:
    # 3000/3000 once left batch creation 1 slot a window while tags calls were
    # being made (3000 - 150 - 3000 < 1): a run crawled at one batch a minute.
    clock = FakeClock()
    limiter = BrandLimiter(3000, 3000, clock=clock, window_seconds=60.0, safety_margin=0.0)
    assert limiter.headroom == 150
    assert limiter.acquire("tags").waited == 0.0
    # Half of what the polls' headroom leaves: (3000 - 150) // 2 = 1425 at once ...
    assert all(limiter.acquire("batches").waited == 0.0 for _ in range(1425))
    assert clock.now() == 0.0
    # ... and tags calls and polls still find the rest of the window.
    assert all(limiter.acquire("tags").waited == 0.0 for _ in range(1424))
    assert limiter.acquire("general").waited == 0.0
    assert clock.now() == 0.0
    assert limiter.acquire("batches").waited == 60.0  # the 1426th waits for the window to pass


def test_batch_headroom_is_5_percent_and_at_least_one() -> None:
    assert BrandLimiter(clock=FakeClock()).headroom == 20  # 5% of 400
    assert BrandLimiter(10, 3, clock=FakeClock()).headroom == 1


@pytest.mark.parametrize(("limit", "seconds"), [(0, 60.0), (5, 0.0)])
def test_a_window_that_could_never_admit_a_request_is_refused(limit: int, seconds: float) -> None:
    # Built directly (benchmarks, a future caller), not only from a schema-checked config:
    # such a window would make earliest() spin for ever under the brand's lock.
    with pytest.raises(ValueError, match="a window needs"):
        SlidingWindow(limit, seconds)
