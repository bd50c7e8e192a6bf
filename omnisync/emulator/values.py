"""Values the emulator reads and writes: times, countries and its own knobs (pure: no I/O).

Omnisend writes times as RFC 3339 in UTC with milliseconds and ``Z``, and
reads them with any offset. A ``countryCode`` is an ISO 3166-1 alpha-2 code
that exists (``ZZ`` is refused); the stored ``country`` name follows it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import pycountry

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def format_time(seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``, as Omnisend writes times."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_timestamp(text: object) -> float | None:
    """Seconds since the epoch for an RFC 3339 timestamp with an offset, else ``None``."""
    if not isinstance(text, str) or len(text) < 20:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if moment.tzinfo is None else moment.timestamp()


def country_name(code: object) -> str | None:
    """The English short name of an existing ISO 3166-1 alpha-2 code (upper case), else ``None``."""
    if not isinstance(code, str) or len(code) != 2 or not code.isascii() or not code.isupper():
        return None
    return _country_name(code)


# Cached: called for every contact written, and pycountry's lookup is a fifth of the
# emulator's CPU for a first export without it (bench/emulator_bench.py).
@lru_cache(maxsize=512)
def _country_name(code: str) -> str | None:
    country = pycountry.countries.get(alpha_2=code)
    return None if country is None else str(country.name)


@lru_cache(maxsize=512)
def country_code(name: str) -> str | None:
    """The alpha-2 code for a country name, if pycountry recognises it."""
    try:
        return str(pycountry.countries.lookup(name).alpha_2)
    except LookupError:
        return None


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


Knobs = TypeVar("Knobs", bound="DataclassInstance")


def changed(knobs: Knobs, changes: Mapping[str, Any], *, what: str) -> Knobs:
    """A copy of the frozen dataclass ``knobs`` with ``changes`` (checked by its
    ``__post_init__``); an unknown name raises ``ValueError`` listing the known ones."""
    known = {item.name for item in dataclasses.fields(knobs)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown {what}(s): {', '.join(unknown)}; known: {sorted(known)}")
    return dataclasses.replace(knobs, **changes)
