"""Pacing under Omnisend's per-brand sliding-window rate limits.

Omnisend counts, per brand, the requests of the last 60 seconds: at most 400
of anything and at most 60 to the tags endpoint (a tags call counts in both).
omnisync paces itself so that it rarely meets a 429, and so that batch
creation and tags calls keep both limits busy at once:

- :class:`SlidingWindow` is the pure bookkeeping of one limit: it *books* the
  time slot at which a request may go, so concurrent callers never overshoot,
  and keeps the invariant "no ``limit + 1`` bookings within less than
  ``window_seconds``" — exactly what a server counting the requests in
  ``(t - window, t]`` checks. Slots may be booked out of order: a tags call
  waiting for its tags slot does not hold up general calls that fit before it.
- :class:`BrandLimiter` is the thread-safe limiter of one brand, shared by
  every export and thread that uses it. It waits on an injected clock, and
  gives batch creation its own share of the overall window so that tags calls
  and polls always find room.
- :class:`LimiterRegistry` hands out one limiter per brand.

**When a request counts.** Omnisend counts a request when it *receives* it,
somewhere between the moment the client sends it and the moment the answer
comes back. A slot booked at the send time may therefore count later at the
server than the client thinks (a thread descheduled after its slot, a slow
connection), and a request booked a window later may then meet a full window
and a 429. So a request's booking is moved, once its answer is in (or the
attempt failed), to that moment (:meth:`BrandLimiter.done`): the latest time
Omnisend can have received it. A request booked a window after it then
reaches Omnisend at least a window after it, however long either was in
flight. Threads waiting for a slot look again when they wake, so they see the
moved bookings. The windows are ``window_seconds + safety_margin`` long; the
margin only absorbs the difference between the client's and Omnisend's clocks.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import threading
from dataclasses import dataclass
from typing import Literal

from omnisync.clock import Clock

Kind = Literal["general", "tags", "batches"]

#: Omnisend's documented defaults (docs/omnisend.md, "Rate limits").
DEFAULT_REQUESTS_PER_MINUTE = 400
DEFAULT_TAGS_PER_MINUTE = 60
DEFAULT_SAFETY_MARGIN = 0.5


@dataclass(frozen=True)
class Slot:
    """A request's place in its brand's windows: booked ``at`` (clock seconds) after
    waiting ``waited`` seconds for it. Hand it back with :meth:`BrandLimiter.done`."""

    kind: Kind
    at: float
    waited: float


class SlidingWindow:
    """At most ``limit`` slots in any interval shorter than ``window_seconds``.

    Pure and not thread-safe (:class:`BrandLimiter` guards it). Times are the
    caller's ``now`` values, in seconds; ``now`` must not go backwards.
    """

    def __init__(self, limit: int, window_seconds: float) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self.limit = limit
        self.window_seconds = window_seconds
        self._slots: list[float] = []  # sorted
        self._paused_until = float("-inf")

    def earliest(self, now: float, *, not_before: float | None = None) -> float:
        """The earliest time ``>= now`` (and ``>= not_before``) a new slot fits. Books nothing."""
        self._forget(now)
        candidate = max(now, self._paused_until)
        if not_before is not None:
            candidate = max(candidate, not_before)
        while True:
            blocking = self._conflict(candidate)
            if blocking is None:
                return candidate
            candidate = blocking

    def book(self, at: float) -> None:
        """Book the slot ``at`` (which :meth:`earliest` returned)."""
        bisect.insort(self._slots, at)

    def cancel(self, at: float) -> None:
        """Give back a booked slot that will not be used."""
        index = bisect.bisect_left(self._slots, at)
        if index < len(self._slots) and self._slots[index] == at:
            del self._slots[index]

    def move(self, booked: float, to: float) -> None:
        """Move a booked slot (still booked or already forgotten) to ``to``."""
        self.cancel(booked)
        self.book(to)

    def reserve(self, now: float) -> float:
        """Book the earliest slot; return how long to wait for it (``>= 0``)."""
        slot = self.earliest(now)
        self.book(slot)
        return slot - now

    def penalise(self, until: float) -> None:
        """Book nothing before ``until`` (a server-imposed pause, e.g. a 429's ``retryAfter``)."""
        self._paused_until = max(self._paused_until, until)

    def _forget(self, now: float) -> None:
        # A slot at or before now - window is outside every window that a
        # slot at or after now can share, so it constrains nothing any more.
        cut = bisect.bisect_right(self._slots, now - self.window_seconds)
        if cut:
            del self._slots[:cut]

    def _conflict(self, candidate: float) -> float | None:
        """``None`` if a slot at ``candidate`` keeps the invariant, else a later time to try.

        With the slot inserted, every run of ``limit + 1`` consecutive slots
        that contains it must span at least ``window_seconds``.
        """
        slots, limit, window = self._slots, self.limit, self.window_seconds
        position = bisect.bisect_right(slots, candidate)
        count = len(slots)
        # Runs start at new index j (position - limit <= j <= position) and end
        # at new index j + limit; new index i > position is old index i - 1.
        for start in range(max(0, position - limit), min(position, count - limit) + 1):
            end = start + limit
            first = candidate if start == position else slots[start]
            last = candidate if end == position else slots[end - 1]
            # Written as the server computes it ("is first at or before
            # last - window?") so that float rounding cannot disagree.
            if last - window >= first:
                continue
            if end == position:
                # The candidate closes the run: it must wait for the run's
                # first slot to leave the window.
                return _after_window(first, window)
            # The candidate sits inside (or opens) a run of ``limit`` other
            # slots already closer than a window: it has to move past them.
            return last
        return None


def _after_window(first: float, window: float) -> float:
    """The earliest float ``t`` with ``t - window >= first``."""
    candidate = first + window
    while candidate - window < first:
        candidate = math.nextafter(candidate, math.inf)
    return candidate


class BrandLimiter:
    """The pacing of one Omnisend brand: thread-safe, shared by every user of a connection.

    Three kinds of request:

    - ``"general"`` (reads, polls): one slot in the overall window;
    - ``"tags"``: one slot at the same instant in the overall and tags windows;
    - ``"batches"`` (batch creation, the bulk of the traffic): one slot in the
      overall window and in a *batches* window whose limit leaves headroom in
      the overall one — ``headroom`` requests (a twentieth of the overall
      limit, at least one) for polls and reads, plus
      ``tags_per_minute`` (at most half of the rest, so that batch creation
      always keeps a fair share) while tags calls are being made (one in the
      last window). Without it, batch creation would take a whole window in
      one burst and tags calls and polls, which need overall slots too, would
      starve until it passed: both limits must stay busy at once.

    A 429 calls :meth:`penalise`, and then no thread of the brand sends
    anything before ``retry_after`` has passed — including threads already
    sleeping towards a slot booked before the 429 arrived.
    """

    def __init__(
        self,
        requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE,
        tags_per_minute: int = DEFAULT_TAGS_PER_MINUTE,
        *,
        clock: Clock,
        window_seconds: float = 60.0,
        safety_margin: float = DEFAULT_SAFETY_MARGIN,
    ) -> None:
        if safety_margin < 0:
            raise ValueError("safety_margin must not be negative")
        self.requests_per_minute = requests_per_minute
        self.tags_per_minute = tags_per_minute
        self.headroom = max(1, math.ceil(requests_per_minute / 20))
        self._clock = clock
        self._span = window_seconds + safety_margin
        self._general = SlidingWindow(requests_per_minute, self._span)
        self._tags = SlidingWindow(tags_per_minute, self._span)
        self._batches = SlidingWindow(self._batch_limit(tags_active=False), self._span)
        self._tags_active_until = float("-inf")
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"BrandLimiter(requests_per_minute={self.requests_per_minute}, "
            f"tags_per_minute={self.tags_per_minute})"
        )

    def acquire(self, kind: Kind) -> Slot:
        """Block until a request of ``kind`` may be sent; return its booked slot.

        Call :meth:`done` with the slot once the attempt is over.
        """
        waited = 0.0
        booked: float | None = None
        while True:
            with self._lock:
                now = self._clock.now()
                if booked is not None:
                    # Re-book at the time we really woke up: a thread that woke
                    # late must not leave an earlier slot on the books than the
                    # one it uses, and a 429 that arrived while we slept moves
                    # us past its pause.
                    for window in self._windows(kind):
                        window.cancel(booked)
                booked = self._slot(kind, now)
            if booked <= now:
                return Slot(kind, booked, waited)
            self._clock.sleep(booked - now)
            waited += booked - now

    def done(self, slot: Slot, *, sent: bool = True) -> None:
        """The attempt of ``slot`` is over: if it was ``sent``, it now counts at this moment,
        the latest time Omnisend can have received it; if not, the slot is given back."""
        with self._lock:
            now = self._clock.now()
            for window in self._windows(slot.kind):
                if sent:
                    window.move(slot.at, max(now, slot.at))
                else:
                    window.cancel(slot.at)

    def penalise(self, retry_after: float) -> None:
        """Pause the whole brand: send nothing for ``retry_after`` seconds from now."""
        with self._lock:
            until = self._clock.now() + max(retry_after, 0.0)
            for window in (self._general, self._tags, self._batches):
                window.penalise(until)

    def _batch_limit(self, *, tags_active: bool) -> int:
        shared = self.requests_per_minute - self.headroom
        # Tags calls are kept room for, but never more than half of what polls
        # leave: with tags_per_minute near requests_per_minute, reserving it all
        # would leave batch creation one slot a window.
        reserved = min(self.tags_per_minute, shared // 2) if tags_active else 0
        return max(1, shared - reserved)

    def _windows(self, kind: Kind) -> tuple[SlidingWindow, ...]:
        if kind == "tags":
            return (self._general, self._tags)
        if kind == "batches":
            return (self._general, self._batches)
        return (self._general,)

    def _slot(self, kind: Kind, now: float) -> float:
        """Book and return the earliest slot for ``kind`` (called with the lock held)."""
        if kind == "tags":
            self._tags_active_until = now + self._span
        self._batches.limit = self._batch_limit(tags_active=now < self._tags_active_until)
        windows = self._windows(kind)
        # The slot must be free in every window at once; move to the latest
        # earliest until all agree (each step only moves later, and the
        # candidate times are finite).
        slot = now
        while True:
            latest = max(window.earliest(now, not_before=slot) for window in windows)
            if latest == slot:
                break
            slot = latest
        for window in windows:
            window.book(slot)
        return slot


class LimiterRegistry:
    """One :class:`BrandLimiter` per brand, shared by every client of that brand.

    A brand is identified by the base URL and a digest of the API key (the
    key itself is never kept). The limits of the first request for a brand
    win: one brand has one set of limits.
    """

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._limiters: dict[tuple[str, str], BrandLimiter] = {}
        self._lock = threading.Lock()

    def limiter(
        self,
        base_url: str,
        api_key: str,
        *,
        requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE,
        tags_per_minute: int = DEFAULT_TAGS_PER_MINUTE,
    ) -> BrandLimiter:
        """The limiter of the brand behind ``base_url`` and ``api_key``, created on first use."""
        key = (base_url.rstrip("/"), brand_digest(api_key))
        with self._lock:
            found = self._limiters.get(key)
            if found is None:
                found = BrandLimiter(requests_per_minute, tags_per_minute, clock=self._clock)
                self._limiters[key] = found
            return found

    def __len__(self) -> int:
        with self._lock:
            return len(self._limiters)


def brand_digest(api_key: str) -> str:
    """A short, non-reversible identifier of an API key, safe to keep and compare."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]
