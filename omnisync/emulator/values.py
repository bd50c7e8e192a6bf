"""Values the emulator reads and writes: times and countries (pure: no I/O).

Omnisend writes times as RFC 3339 in UTC with milliseconds and ``Z``, and
reads them with any offset. A ``countryCode`` is an ISO 3166-1 alpha-2 code
that exists (``ZZ`` is refused), and it wins over ``country``: the stored
name follows the code (``docs/omnisend.md``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import pycountry


def format_time(seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``, as Omnisend writes times."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(text: object) -> float | None:
    """Seconds since the epoch for an RFC 3339 timestamp with an offset, else ``None``."""
    if not isinstance(text, str) or len(text) < 20:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def country_name(code: object) -> str | None:
    """The English short name of an existing ISO 3166-1 alpha-2 code (upper case), else ``None``."""
    if not isinstance(code, str) or len(code) != 2 or not code.isascii() or not code.isupper():
        return None
    return _country_name(code)


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
