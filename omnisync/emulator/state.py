"""The emulator's shared state: brands, keys, clock, worker, faults, request log and counts.

Thread-safe: HTTP handler threads, the worker thread and test code all use
one :class:`EmulatorState`. API keys live only in the private key map; they
never appear in a brand name, a log record, a repr or an answer.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from omnisync.clock import Clock
from omnisync.emulator.brand import Brand
from omnisync.emulator.faults import FaultInjector, Faults
from omnisync.emulator.values import changed, check_flag, check_number
from omnisync.emulator.worker import Worker

API_VERSION = "2026-03-15"
AUTH_SCHEME = "Omnisend-API-Key "


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One API request as the emulator saw it.

    ``endpoint`` is the route (``"POST /batches"``), ``"unknown"`` for a path
    the API does not have; ``status`` is ``None`` when the connection was
    dropped without an answer; ``at`` is modelled seconds (``clock.now()``);
    ``emails`` are the contacts a contact write or tag call named, in order;
    ``key`` is the API key that asked (one brand may have several).
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
    #: when the request's head arrived (modelled seconds; ``at`` is when it was answered)
    received: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "method": self.method,
            "path": self.path,
            "endpoint": self.endpoint,
            "status": self.status,
            "at": self.at,
            "brand": self.brand,
            "emails": list(self.emails),
        }


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

    def changed(self, changes: Mapping[str, Any]) -> Settings:
        """A copy with ``changes`` applied; a bad value or an unknown name raises ``ValueError``."""
        return changed(self, changes, what="setting")


def brand_map(api_keys: Iterable[str] | Mapping[str, str]) -> dict[str, str]:
    """Key -> brand name. A plain sequence gives every key its own brand ``brand-1``, ...."""
    if isinstance(api_keys, Mapping):
        mapping = {str(key): str(brand) for key, brand in api_keys.items()}
    else:
        if isinstance(api_keys, str):
            raise TypeError("api_keys must be a sequence of keys or a key -> brand mapping")
        mapping = {str(key): f"brand-{index}" for index, key in enumerate(api_keys, start=1)}
    if not mapping or any(not key for key in mapping):
        raise ValueError("at least one non-empty API key is needed")
    return mapping


class EmulatorState:
    """Everything the HTTP layer and the Python inspection API share."""

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
        if requests_per_minute < 1 or tags_per_minute < 1:
            raise ValueError("rate limits must be at least 1 request per minute")
        self.clock = clock
        self.settings = settings
        self.injector = FaultInjector(faults)
        self.worker = Worker(clock)
        self.log_emails = log_emails
        self.brands: dict[str, Brand] = {}
        self._keys: dict[str, Brand] = {}
        for key, name in brand_map(api_keys).items():
            if name not in self.brands:
                self.brands[name] = Brand(
                    name,
                    index=len(self.brands) + 1,
                    requests_per_minute=requests_per_minute,
                    tags_per_minute=tags_per_minute,
                )
            self._keys[key] = self.brands[name]
        self._log: deque[RequestRecord] = deque(maxlen=request_log_limit)
        self._counts: dict[str, dict[int | None, int]] = {}
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EmulatorState(brands={sorted(self.brands)!r})"

    # -- identity --------------------------------------------------------------

    def authenticate(self, header: str | None) -> tuple[Brand, str] | None:
        """The brand and the API key an ``Authorization`` header names, if it names a known one."""
        if header is None or not header.startswith(AUTH_SCHEME):
            return None
        key = header[len(AUTH_SCHEME) :].strip()
        return (self._keys[key], key) if key in self._keys else None

    def brand_for_key(self, api_key: str) -> str:
        """The brand name an API key belongs to (``KeyError`` without naming the key)."""
        brand = self._keys.get(api_key)
        if brand is None:
            raise KeyError("unknown API key")
        return brand.name

    def brand(self, name: str | None) -> Brand:
        """A brand by name; ``None`` means the only one (``ValueError`` if there are several)."""
        if name is None:
            if len(self.brands) == 1:
                return next(iter(self.brands.values()))
            raise ValueError(f"several brands exist, name one of {sorted(self.brands)}")
        try:
            return self.brands[name]
        except KeyError:
            raise ValueError(f"no brand {name!r}; brands: {sorted(self.brands)}") from None

    # -- time ------------------------------------------------------------------

    def wall_seconds(self) -> float:
        return self.clock.wall().timestamp()

    # -- limits ----------------------------------------------------------------

    def admit(self, brand: Brand, *, is_tags: bool) -> int | None:
        """``None`` when the request may go on, else its ``retryAfter`` seconds."""
        if not self.settings.rate_limits:
            return None
        now = self.clock.now()
        with brand.lock:
            return brand.limits.admit(now, is_tags=is_tags)

    # -- asynchronous work -------------------------------------------------------

    def schedule_batch(self, brand: Brand, batch: Any) -> None:
        """Queue a batch: ``inProgress`` after half of ``batch_delay``, ``finished`` after all."""
        delay = self.settings.batch_delay
        created = self.clock.now()

        def start() -> None:
            faults = self.injector.faults
            brand.start_batch(
                batch,
                at=self.wall_seconds(),
                failing_emails=faults.failing_emails,
                stop_after=faults.stop_after_errors,
            )

        def finish() -> None:
            brand.finish_batch(batch, at=self.wall_seconds())

        self.worker.schedule(created + delay / 2, start)
        self.worker.schedule(created + delay, finish)

    def schedule_tags(self, brand: Brand, body: Mapping[str, Any], *, remove: bool) -> None:
        def apply() -> None:
            brand.change_tags(body, remove=remove, at=self.wall_seconds())

        self.worker.schedule(self.clock.now() + self.settings.tag_delay, apply)

    # -- request log and counts --------------------------------------------------

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
        at = self.clock.now()
        with self._lock:
            self._log.append(
                RequestRecord(
                    next(self._sequence),
                    method,
                    path,
                    endpoint,
                    status,
                    at,
                    brand.name if brand is not None else None,
                    emails if self.log_emails else (),
                    key,
                    received,
                )
            )
            by_status = self._counts.setdefault(endpoint, {})
            by_status[status] = by_status.get(status, 0) + 1

    def request_log(self, brand: str | None = None) -> list[RequestRecord]:
        with self._lock:
            records = list(self._log)
        return records if brand is None else [r for r in records if r.brand == brand]

    def counts(self) -> dict[str, Any]:
        """``{"total", "rate_limited", "by_endpoint": {endpoint: {status: n}}}``.

        Statuses are strings; a dropped connection counts as ``"dropped"``.
        """
        with self._lock:
            by_endpoint = {
                endpoint: {
                    ("dropped" if status is None else str(status)): count
                    for status, count in sorted(statuses.items(), key=lambda s: str(s[0]))
                }
                for endpoint, statuses in sorted(self._counts.items())
            }
        total = sum(sum(statuses.values()) for statuses in by_endpoint.values())
        limited = sum(statuses.get("429", 0) for statuses in by_endpoint.values())
        return {"total": total, "rate_limited": limited, "by_endpoint": by_endpoint}

    def reset(self) -> None:
        """Forget all contacts, batches, windows, logs and counts; keep keys, settings, faults."""
        self.worker.clear()
        self.worker.wait_idle(5.0)
        for brand in self.brands.values():
            brand.reset()
        with self._lock:
            self._log.clear()
            self._counts.clear()
