"""The emulator's shared state: brands, keys, clock, worker, faults, request log and counts.

Thread-safe: HTTP handler threads, the worker thread and test code all use
one :class:`EmulatorState`. API keys live only in the private key map; they
never appear in a brand name, a log record, a repr or an answer.

Batches and tag calls are answered at once and applied later, as Omnisend
does, by the :class:`Worker` thread: each piece of work is scheduled at a
modelled time (``clock.now()`` seconds) and run in time order, one at a time.
It never calls ``clock.sleep`` (a :class:`~omnisync.clock.FakeClock` would
jump forward): it waits on a condition for at most a few real milliseconds
and looks at the clock again, so a scaled clock, the system clock and a fake
clock advanced by a test all work.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from omnisync.clock import Clock
from omnisync.emulator.brand import Brand
from omnisync.emulator.faults import FaultInjector, Faults, check_flag, check_number

logger = logging.getLogger("omnisync.emulator")

API_VERSION = "2026-03-15"
AUTH_SCHEME = "Omnisend-API-Key "
#: The longest real pause of the worker between two looks at the clock.
_MAX_REAL_WAIT = 0.01


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One API request as the emulator saw it.

    ``endpoint`` is the route (``"POST /batches"``), ``"unknown"`` for a path
    the API does not have; ``status`` is ``None`` when the connection was
    dropped without an answer; ``received`` (the head arrived) and ``at`` (the
    answer) are modelled seconds (``clock.now()``); ``emails`` are the
    contacts a contact write or tag call named, in order; ``key`` is the API
    key that asked (one brand may have several; never in :meth:`to_json`).
    """

    sequence: int
    method: str
    path: str
    endpoint: str
    status: int | None
    at: float
    brand: str | None
    emails: tuple[str, ...] = ()
    key: str | None = None
    received: float = 0.0

    def to_json(self) -> dict[str, Any]:
        # Named fields only: asdict would deep-copy every e-mail of a large log, and a field
        # added later (like ``key``) must not reach the inspection API by default.
        shown = {name: getattr(self, name) for name in _SHOWN_FIELDS}
        return {**shown, "emails": list(self.emails)}


#: The :class:`RequestRecord` fields the inspection API shows (besides ``emails``), in order.
_SHOWN_FIELDS = ("sequence", "method", "path", "endpoint", "status", "at", "brand")


@dataclass(frozen=True)
class Settings:
    """Behaviour knobs that may change while the emulator runs (defaults: ``Emulator``'s)."""

    rate_limits: bool
    batch_delay: float
    tag_delay: float
    max_batch_bytes: int
    #: Seconds a batch is kept after its creation; then its id answers 404.
    batch_retention: float

    def __post_init__(self) -> None:
        check_flag("rate_limits", self.rate_limits)
        check_number("batch_delay", self.batch_delay, low=0)
        check_number("tag_delay", self.tag_delay, low=0)
        check_number("max_batch_bytes", self.max_batch_bytes, low=1, integer=True)
        check_number("batch_retention", self.batch_retention, low=0)


class Worker:
    """Runs scheduled callables in modelled-time order on one daemon thread."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._scale = float(getattr(clock, "scale", 1.0))
        self._queue: list[tuple[float, int, Callable[[], object]]] = []
        self._sequence = itertools.count()
        self._condition = threading.Condition()
        self._busy = False
        self._running = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(
            target=self._run, name="omnisend-emulator-worker", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop after the callable in progress; work not yet run is dropped."""
        with self._condition:
            self._running = False
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def schedule(self, due: float, work: Callable[[], object]) -> None:
        """Run ``work`` once ``clock.now() >= due`` (after earlier work, and work scheduled
        earlier for the same time)."""
        with self._condition:
            heapq.heappush(self._queue, (due, next(self._sequence), work))
            self._condition.notify_all()

    def clear(self) -> None:
        """Drop every piece of work not yet started."""
        with self._condition:
            self._queue.clear()

    def wait_idle(self, timeout: float, *, due_only: bool = False) -> bool:
        """Block (real seconds) until nothing is queued or running, or with ``due_only`` nothing
        due by now (how to settle after advancing a ``FakeClock``); ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._busy or (
                self._queue and (not due_only or self._queue[0][0] <= self._clock.now())
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(min(remaining, _MAX_REAL_WAIT))
        return True

    def _run(self) -> None:
        while True:
            with self._condition:
                if not self._running:
                    return
                if not self._queue:
                    self._condition.wait()  # schedule() and stop() notify
                    continue
                lateness = self._clock.now() - self._queue[0][0]
                if lateness < 0:
                    self._condition.wait(min(-lateness / self._scale, _MAX_REAL_WAIT))
                    continue
                _, _, work = heapq.heappop(self._queue)
                self._busy = True
            try:
                work()
            except Exception:
                # The worker must survive a bug in one piece of work.
                logger.exception("emulator work failed", extra={"event": "emulator_work_failed"})
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()


class EmulatorState:
    """Everything the HTTP layer and the Python inspection API share (``api_keys`` as
    :class:`~omnisync.emulator.server.Emulator` takes them)."""

    def __init__(
        self,
        api_keys: Iterable[str] | Mapping[str, str],
        *,
        clock: Clock,
        settings: Settings,
        faults: Faults,
        requests_per_minute: int,
        tags_per_minute: int,
        request_log_limit: int | None,
        log_emails: bool,
    ) -> None:
        if isinstance(api_keys, str):
            raise TypeError("api_keys must be a sequence of keys or a key -> brand mapping")
        if not isinstance(api_keys, Mapping):
            api_keys = {key: f"brand-{index}" for index, key in enumerate(api_keys, start=1)}
        if not api_keys or not all(api_keys):
            raise ValueError("at least one non-empty API key is needed")
        if requests_per_minute < 1 or tags_per_minute < 1:
            raise ValueError("rate limits must be at least 1 request per minute")
        self.clock = clock
        self.settings = settings
        self.injector = FaultInjector(faults)
        self.worker = Worker(clock)
        self.log_emails = log_emails
        self.brands: dict[str, Brand] = {}
        self._keys: dict[str, Brand] = {}
        limits = (requests_per_minute, tags_per_minute)
        for key, name in api_keys.items():
            if name not in self.brands:
                index = len(self.brands) + 1
                self.brands[name] = Brand(
                    name, index=index, clock=clock, injector=self.injector, limits=limits
                )
            self._keys[key] = self.brands[name]
        self._log: deque[RequestRecord] = deque(maxlen=request_log_limit)
        #: (endpoint, status as text or "dropped") -> requests
        self._counts: Counter[tuple[str, str]] = Counter()
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()

    def authenticate(self, header: str | None) -> tuple[Brand, str] | None:
        """The brand and the API key an ``Authorization`` header names, if it names a known one."""
        if header is None or not header.startswith(AUTH_SCHEME):
            return None
        key = header[len(AUTH_SCHEME) :].strip()
        return (self._keys[key], key) if key in self._keys else None

    def brand(self, name: str | None) -> Brand:
        """A brand by name; ``None`` means the only one (``ValueError`` if there are several)."""
        if name is None and len(self.brands) == 1:
            return next(iter(self.brands.values()))
        if name is None:
            raise ValueError(f"several brands exist, name one of {sorted(self.brands)}")
        if name not in self.brands:
            raise ValueError(f"no brand {name!r}; brands: {sorted(self.brands)}")
        return self.brands[name]

    def record(
        self,
        *,
        method: str,
        path: str,
        endpoint: str,
        status: int | None,
        brand: Brand | None,
        emails: tuple[str, ...],
        key: str | None,
        received: float,
    ) -> None:
        """Log one API request (``status`` ``None``: dropped) and count it."""
        with self._lock:
            self._log.append(
                RequestRecord(
                    next(self._sequence),
                    method,
                    path,
                    endpoint,
                    status,
                    self.clock.now(),
                    None if brand is None else brand.name,
                    emails if self.log_emails else (),
                    key,
                    received,
                )
            )
            self._counts[endpoint, "dropped" if status is None else str(status)] += 1

    def request_log(self, brand: str | None = None) -> list[RequestRecord]:
        with self._lock:
            records = list(self._log)
        return records if brand is None else [r for r in records if r.brand == brand]

    def counts(self) -> dict[str, Any]:
        with self._lock:
            counts = sorted(self._counts.items())
        by_endpoint: dict[str, dict[str, int]] = {}
        for (endpoint, status), count in counts:
            by_endpoint.setdefault(endpoint, {})[status] = count
        limited = sum(count for (_, status), count in counts if status == "429")
        total = sum(count for _, count in counts)
        return {"total": total, "rate_limited": limited, "by_endpoint": by_endpoint}

    def reset(self) -> None:
        self.worker.clear()
        self.worker.wait_idle(5.0)
        for brand in self.brands.values():
            brand.reset()
        with self._lock:
            self._log.clear()
            self._counts.clear()
