"""Fault injection: configured as a frozen :class:`Faults`, drawn by a :class:`FaultInjector`;
and the checks of the emulator's knobs (:class:`Faults` and ``Settings``).

Faults apply to API requests only (never to ``/_emulator/``), after
authentication and the version check, in this order:

1. ``force_429_count``: the next N requests answer 429 with ``retryAfter =
   force_429_retry_after``, before the rate limits (not processed, not counted);
2. after the real rate limits, ``error_rate_500`` / ``error_rate_503``: that
   fraction of requests answers 500 / 503 unprocessed;
3. ``drop_rate``: that fraction is read and the connection closed without an
   answer; unprocessed, or with ``drop_after_processing`` processed and only
   the answer lost (the harder case for a client that retries);
4. ``latency``: modelled seconds added before every answer;
5. ``failing_emails``: a contact (POST/PATCH /contacts or a batch item) with
   one of these e-mails fails with a 400 naming ``identifiers[0].id``;
6. ``stop_after_errors``: a batch stops once this many of its items failed
   (if that comes before more than half of them, which stops it anyway).

``only_endpoints`` (e.g. ``{"POST /batches"}``) limits 1-3 to those
endpoints. Draws come from ``random.Random(seed)``, reseeded whenever faults
are set: a run is reproducible for the same request order.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Draw = Literal["ok", "error_500", "error_503", "drop"]
_RANDOM_DRAWS: tuple[Draw, ...] = ("error_500", "error_503", "drop")
Knobs = TypeVar("Knobs", bound="DataclassInstance")


def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    integer: bool = False,
) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a number (an integer when
    ``integer``; never a boolean, never NaN) from ``low`` up to ``high``."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    # `not value >= low`, not `value < low`: NaN is outside every bound.
    if (low is not None and not value >= low) or (high is not None and not value <= high):
        if low is None:
            bounds = f"at most {high:g}"
        elif high is None:
            bounds = f"at least {low:g}"
        else:
            bounds = f"between {low:g} and {high:g}"
        raise ValueError(f"{name} must be {kind} {bounds}, got {value!r}")


def check_flag(name: str, value: object) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def changed(knobs: Knobs, changes: Mapping[str, Any], *, what: str) -> Knobs:
    """A copy of the frozen dataclass ``knobs`` (:class:`Faults`, ``Settings``) with ``changes``,
    checked by its ``__post_init__``; an unknown name raises ``ValueError`` listing the known."""
    known = {item.name for item in dataclasses.fields(knobs)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown {what}(s): {', '.join(unknown)}; known: {sorted(known)}")
    return dataclasses.replace(knobs, **changes)


@dataclass(frozen=True)
class Faults:
    """The faults to inject; the default injects none."""

    error_rate_500: float = 0.0
    error_rate_503: float = 0.0
    latency: float = 0.0
    drop_rate: float = 0.0
    drop_after_processing: bool = False
    failing_emails: frozenset[str] = frozenset()
    stop_after_errors: int | None = None
    force_429_count: int = 0
    force_429_retry_after: int = 1
    only_endpoints: frozenset[str] = frozenset()
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("error_rate_500", "error_rate_503", "drop_rate"):
            check_number(name, getattr(self, name), low=0, high=1)
        if self.error_rate_500 + self.error_rate_503 + self.drop_rate > 1.0:
            raise ValueError("error_rate_500 + error_rate_503 + drop_rate must not exceed 1")
        check_flag("drop_after_processing", self.drop_after_processing)
        check_number("seed", self.seed, integer=True)
        check_number("latency", self.latency, low=0)
        if self.stop_after_errors is not None:
            check_number("stop_after_errors", self.stop_after_errors, low=1, integer=True)
        check_number("force_429_count", self.force_429_count, low=0, integer=True)
        check_number("force_429_retry_after", self.force_429_retry_after, low=1, integer=True)
        for name in ("failing_emails", "only_endpoints"):
            value = getattr(self, name)
            if not isinstance(value, list | tuple | set | frozenset) or not all(
                isinstance(item, str) for item in value
            ):
                raise ValueError(f"{name} must be a list of strings")
            object.__setattr__(self, name, frozenset(value))

    def to_json(self) -> dict[str, Any]:
        """Plain data for the inspection API (sets become sorted lists)."""
        data = dataclasses.asdict(self)
        data["failing_emails"] = sorted(self.failing_emails)
        data["only_endpoints"] = sorted(self.only_endpoints)
        return data

    def changed(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with ``changes`` applied; a bad value or an unknown name raises ``ValueError``."""
        return changed(self, changes, what="fault setting")


class FaultInjector:
    """Thread-safe draws from the current :class:`Faults`."""

    def __init__(self, faults: Faults) -> None:
        self._lock = threading.Lock()
        self.set(faults)

    def set(self, faults: Faults) -> None:
        """Replace the faults; the random draws and the 429 burst start again."""
        with self._lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)
            self._forced_429s = faults.force_429_count

    def _applies(self, endpoint: str) -> bool:
        return not self.faults.only_endpoints or endpoint in self.faults.only_endpoints

    def take_forced_429(self, endpoint: str) -> int | None:
        """``retryAfter`` when this request to ``endpoint`` is one of the forced 429s."""
        with self._lock:
            if not self._applies(endpoint) or self._forced_429s <= 0:
                return None
            self._forced_429s -= 1
            return self.faults.force_429_retry_after

    def draw(self, endpoint: str) -> Draw:
        """What happens to one admitted API request to ``endpoint`` (``"POST /batches"``)."""
        faults = self.faults
        rates = (faults.error_rate_500, faults.error_rate_503, faults.drop_rate)
        if not self._applies(endpoint) or not any(rates):
            return "ok"
        with self._lock:
            roll = self._rng.random()
        for draw, rate in zip(_RANDOM_DRAWS, rates, strict=True):
            if roll < rate:
                return draw
            roll -= rate
        return "ok"
