"""Pacing under Omnisend's per-brand sliding-window rate limits (400 requests and 60 tags
calls in any 60 seconds; a tags call counts in both), booking each request's slot so
that concurrent callers never overshoot.

**When a request counts.** Omnisend counts a request when it *receives* it, somewhere
between sending and the answer. A slot booked at the send time may count later at the
server (a descheduled thread, a slow connection), and a request booked a window later
would then meet a full window. So once the attempt is over its booking moves to that
moment (:meth:`BrandLimiter.done`), the latest Omnisend can have received it; waiting
threads look again when they wake. Windows are ``window_seconds + safety_margin``
long; the margin only absorbs the difference between the two clocks.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from omnisync.clock import Clock

Kind = Literal["general", "tags", "batches"]

logger = logging.getLogger("omnisync.omnisend")

#: Omnisend's documented defaults (docs/omnisend.md, "Rate limits").
DEFAULT_REQUESTS_PER_MINUTE = 400
DEFAULT_TAGS_PER_MINUTE = 60
DEFAULT_SAFETY_MARGIN = 0.5
#: The longest a request waits for its slot without asking whether it was cancelled.
CANCEL_CHECK = 1.0


@dataclass(frozen=True)
class Slot:
    """A request's place in its brand's windows: booked ``at`` (clock seconds) after
    waiting ``waited`` seconds for it. Hand it back with :meth:`BrandLimiter.done`."""

    kind: Kind
    at: float
    waited: float


class SlidingWindow:
    """At most ``limit`` (>= 1) slots in any interval shorter than ``window_seconds`` (> 0):
    what a server counting the requests in ``(t - window, t]`` checks. Slots may be booked
    out of order. Pure, not thread-safe; the caller's ``now`` must not go backwards."""

    def __init__(self, limit: int, window_seconds: float) -> None:
        _check_window(limit, window_seconds)
        self.limit = limit
        self.window_seconds = window_seconds
        self._slots: list[float] = []  # sorted
        self._paused_until = float("-inf")

    def earliest(self, now: float, *, not_before: float = -math.inf) -> float:
        """The earliest time ``>= now`` (and ``>= not_before``) a new slot fits. Books nothing."""
        self._forget(now)
        candidate = max(now, self._paused_until, not_before)
        while (blocking := self._conflict(candidate)) is not None:
            candidate = blocking
        return candidate

    def book(self, at: float) -> None:
        bisect.insort(self._slots, at)

    def cancel(self, at: float) -> None:
        """Give back a booked slot (nothing if it was already forgotten)."""
        index = bisect.bisect_left(self._slots, at)
        if index < len(self._slots) and self._slots[index] == at:
            del self._slots[index]

    def penalise(self, until: float) -> None:
        """Book nothing before ``until`` (a server-imposed pause, e.g. a 429's ``retryAfter``)."""
        self._paused_until = max(self._paused_until, until)

    def _forget(self, now: float) -> None:
        # A slot at or before now - window shares no window with a slot at or after now.
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
        # Runs start at new index j (position - limit <= j <= position) and end at new
        # index j + limit; new index i > position is old index i - 1.
        for start in range(max(0, position - limit), min(position, count - limit) + 1):
            end = start + limit
            first = candidate if start == position else slots[start]
            last = candidate if end == position else slots[end - 1]
            # As the server computes it ("is first at or before last - window?"), so
            # that float rounding cannot disagree.
            if last - window >= first:
                continue
            if end == position:
                # The candidate closes the run: it waits for the run's first slot to leave.
                return _after_window(first, window)
            # It sits inside (or opens) a run of ``limit`` other slots closer than a
            # window: it has to move past them.
            return last
        return None


def _check_window(limit: int, window_seconds: float) -> None:
    # Not only the schema's rule: a window of no slots would make earliest() spin for ever.
    if limit < 1 or not window_seconds > 0:
        raise ValueError(
            f"a window needs limit >= 1 and seconds > 0, got {limit}, {window_seconds}"
        )


def _after_window(first: float, window: float) -> float:
    """The earliest float ``t`` with ``t - window >= first``."""
    candidate = first + window
    while candidate - window < first:
        candidate = math.nextafter(candidate, math.inf)
    return candidate


class BrandLimiter:
    """The pacing of one Omnisend brand: thread-safe, shared by every user of a connection.

    ``"general"`` requests (reads, polls) take a slot in the overall window; ``"tags"``
    one in the overall and tags windows; ``"batches"`` one in the overall window and in
    a *batches* window that leaves ``headroom`` (5% of the overall limit, at least one)
    for polls, plus ``tags_per_minute`` (at most half of the rest) while tags calls were
    made in the last window: else batch creation would take a whole window in one burst
    and starve tags calls and polls. After :meth:`penalise` (a 429) no thread of the
    brand sends before the pause ends, including threads already sleeping towards a slot.
    :meth:`set_limits` changes the limits in place.
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
        self._clock = clock
        self._span = window_seconds + safety_margin
        self._general = SlidingWindow(requests_per_minute, self._span)
        self._tags = SlidingWindow(tags_per_minute, self._span)
        self._batches = SlidingWindow(1, self._span)  # its limit: set_limits() sets it
        self._windows: dict[Kind, tuple[SlidingWindow, ...]] = {
            "general": (self._general,),
            "tags": (self._general, self._tags),
            "batches": (self._general, self._batches),
        }
        self._tags_active_until = float("-inf")
        self._lock = threading.Lock()
        self.set_limits(requests_per_minute, tags_per_minute)

    def acquire(self, kind: Kind, *, cancelled: Callable[[], bool] | None = None) -> Slot | None:
        """Block until a request of ``kind`` may be sent; return its booked slot, to hand
        back with :meth:`done` once the attempt is over. ``None``: ``cancelled()`` became
        true while waiting (asked at least every :data:`CANCEL_CHECK` seconds: a 429's
        pause may last minutes, and a stopped run must not wait it out)."""
        waited = 0.0
        booked: float | None = None
        while True:
            with self._lock:
                now = self._clock.now()
                if booked is not None:
                    # Re-book at the time we really woke up: a thread that woke late must
                    # not leave an earlier slot on the books than the one it uses, and a
                    # 429 that arrived while we slept moves us past its pause.
                    for window in self._windows[kind]:
                        window.cancel(booked)
                booked = self._slot(kind, now)
                if booked > now and cancelled is not None and cancelled():
                    for window in self._windows[kind]:
                        window.cancel(booked)
                    return None
            if booked <= now:
                return Slot(kind, booked, waited)
            pause = booked - now if cancelled is None else min(booked - now, CANCEL_CHECK)
            self._clock.sleep(pause)
            waited += pause

    def done(self, slot: Slot, *, sent: bool = True) -> None:
        """The attempt of ``slot`` is over: if it was ``sent``, it now counts at this moment,
        the latest time Omnisend can have received it; if not, the slot is given back."""
        with self._lock:
            now = self._clock.now()
            for window in self._windows[slot.kind]:
                window.cancel(slot.at)
                if sent:
                    window.book(max(now, slot.at))

    def penalise(self, retry_after: float) -> None:
        """Pause the whole brand: send nothing for ``retry_after`` seconds from now."""
        with self._lock:
            until = self._clock.now() + retry_after
            for window in (self._general, self._tags, self._batches):
                window.penalise(until)

    def set_limits(self, requests_per_minute: int, tags_per_minute: int) -> None:
        """Pace at these limits from now on (``ValueError``, changing nothing, if one is
        below 1). The requests already counted in the windows count against the new
        limits; a thread asleep towards a slot looks again when it wakes, so a lower
        limit holds it back then, and a higher one speeds up its next request."""
        for limit in (requests_per_minute, tags_per_minute):
            _check_window(limit, self._span)
        with self._lock:
            self.requests_per_minute = requests_per_minute
            self.tags_per_minute = tags_per_minute
            # The overall slots batch creation leaves to polls: 5%, at least one.
            self.headroom = max(1, math.ceil(requests_per_minute / 20))
            self._general.limit = requests_per_minute
            self._tags.limit = tags_per_minute
            tags_active = self._clock.now() < self._tags_active_until
            self._batches.limit = self._batch_limit(tags_active=tags_active)

    def _batch_limit(self, *, tags_active: bool) -> int:
        shared = self.requests_per_minute - self.headroom
        # Room kept for tags calls, at most half of what polls leave: with tags_per_minute
        # near requests_per_minute, reserving it all would leave batch creation one slot.
        reserved = min(self.tags_per_minute, shared // 2) if tags_active else 0
        return max(1, shared - reserved)

    def _slot(self, kind: Kind, now: float) -> float:
        # Called with the lock held.
        if kind == "tags":
            self._tags_active_until = now + self._span
        self._batches.limit = self._batch_limit(tags_active=now < self._tags_active_until)
        windows = self._windows[kind]
        # Free in every window at once: move to the latest earliest until all agree
        # (each step only moves later, and the candidate times are finite).
        slot = now
        while (latest := max(window.earliest(now, not_before=slot) for window in windows)) != slot:
            slot = latest
        for window in windows:
            window.book(slot)
        return slot


class LimiterRegistry:
    """One :class:`BrandLimiter` per brand (base URL and a digest of the key, never the key).

    Asked for a brand with other limits than its limiter's (a connection's ``rate_limit``
    changed by a reload), the limiter takes them at once, in place: every client of the
    brand, old and new, paces at them. Two connections of one brand asking for different
    limits: the last asked wins.
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
        """The limiter of the brand at ``base_url`` with ``api_key``, made on first use,
        pacing at these limits from now on (see the class docstring); ``ValueError`` for
        a limit below 1."""
        key = (base_url.rstrip("/"), brand_digest(api_key))
        with self._lock:
            found = self._limiters.get(key)
            if found is None:
                found = BrandLimiter(requests_per_minute, tags_per_minute, clock=self._clock)
                self._limiters[key] = found
                return found
            was = (found.requests_per_minute, found.tags_per_minute)
            if was != (requests_per_minute, tags_per_minute):
                found.set_limits(requests_per_minute, tags_per_minute)
                # Said aloud: an operator lowering rate_limit after a 429 wants to see it hold.
                logger.info(
                    "the rate limits of the brand at %s are now %d requests and %d tags calls "
                    "a minute (were %d and %d)",
                    key[0],
                    requests_per_minute,
                    tags_per_minute,
                    *was,
                    extra={
                        "event": "omnisend.limits_changed",
                        "requests_per_minute": requests_per_minute,
                        "tags_per_minute": tags_per_minute,
                    },
                )
            return found

    def __len__(self) -> int:
        with self._lock:
            return len(self._limiters)


def brand_digest(api_key: str) -> str:
    """A short, non-reversible identifier of an API key, safe to keep and compare."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]
