"""Moments as ``omnisync status`` shows them to people; the JSON keeps timestamps."""

from __future__ import annotations

from datetime import datetime

from omnisync.daemon.status import parse_time


def relative_time(value: object, now: datetime) -> str:
    """A moment as people say it: ``in 14m``, ``3m ago``, ``now``; ``-`` when absent."""
    moment = parse_time(value)
    if moment is None:
        return "-" if not value else str(value)
    seconds = int((moment - now).total_seconds())
    if abs(seconds) < 1:
        return "now"
    length = _span(abs(seconds))
    return f"in {length}" if seconds > 0 else f"{length} ago"


def _span(seconds: int) -> str:
    """``42s``, ``14m``, ``3h 05m``, ``2d 4h``: two units at most."""
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def short_time(value: object) -> str:
    """A timestamp shortened for people: ``2026-01-01 12:00:00Z``; ``-`` when absent."""
    moment = parse_time(value)
    if moment is None:
        return "-" if not value else str(value)
    offset = moment.strftime("%z")
    suffix = "Z" if offset in ("+0000", "") else f" {offset[:3]}:{offset[3:]}"
    return moment.strftime("%Y-%m-%d %H:%M:%S") + suffix
