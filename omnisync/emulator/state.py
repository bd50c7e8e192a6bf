"""The emulator's shared state: brands, keys, clock, worker, faults, request log and counts.

Thread-safe: HTTP handler threads, the worker thread and test code all use
one :class:`EmulatorState`. API keys live only in the private key map; they
never appear in a brand name, a log record, a repr or an answer.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from omnisync.clock import Clock
from omnisync.emulator.batches import Batch
from omnisync.emulator.brand import Brand
from omnisync.emulator.faults import FaultInjector, Faults
from omnisync.emulator.values import check_flag, check_number
from omnisync.emulator.worker import Worker

API_VERSION = "2026-03-15"
AUTH_SCHEME = "Omnisend-API-Key "


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
        data = dataclasses.asdict(self)
        del data["key"], data["received"]
        return data


@dataclass(frozen=True)
class Settings:
    """Behaviour knobs that may change while the emulator runs."""

    rate_limits: bool = True
    batch_delay: float = 0.2
    tag_delay: float = 0.05
    max_batch_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        check_flag("rate_limits", self.rate_limits)
        check_number("batch_delay", self.batch_delay, low=0)
        check_number("tag_delay", self.tag_delay, low=0)
        check_number("max_batch_bytes", self.max_batch_bytes, low=1, integer=True)


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
        for key, name in api_keys.items():
            if name not in self.brands:
                self.brands[name] = Brand(
                    name,
                    index=len(self.brands) + 1,
                    clock=clock,
                    injector=self.injector,
                    requests_per_minute=requests_per_minute,
                    tags_per_minute=tags_per_minute,
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

    def schedule_batch(self, brand: Brand, batch: Batch) -> None:
        """Queue a batch: ``inProgress`` after half of ``batch_delay``, ``finished`` after all."""
        created = self.clock.now()
        self.worker.schedule(
            created + self.settings.batch_delay / 2, lambda: brand.start_batch(batch)
        )
        self.worker.schedule(created + self.settings.batch_delay, lambda: brand.finish_batch(batch))

    def schedule_tags(self, brand: Brand, body: Mapping[str, Any], *, remove: bool) -> None:
        """Queue a validated tags call, applied after ``tag_delay``."""
        due = self.clock.now() + self.settings.tag_delay
        self.worker.schedule(due, lambda: brand.change_tags(body, remove=remove))

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
