"""Durations as written in a config: ``15m``, ``500ms``, ``1.5h`` or a number of seconds.

Pure. The schema admits only these shapes; :func:`parse_duration` turns one
into seconds.
"""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$")


def parse_duration(value: object) -> float:
    """Seconds in ``value``: an int or float (seconds) or a string such as ``15m``.

    Raises ``ValueError`` for anything else, including booleans and negative
    or non-finite numbers.
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number or a string such as 15m, not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value.strip())
        if match is None:
            raise ValueError(f"not a duration: {value!r}; use a form such as 15m, 30s or 500ms")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"a duration is a number or a string, not {type(value).__name__}")
    if not 0 <= seconds < float("inf"):
        raise ValueError("a duration must be zero or more and finite")
    return seconds
