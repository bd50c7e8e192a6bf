"""Values of the ``daemon`` section that the schema lets through but cannot judge.

Guards' shares (``"20%"``) and the lease's bounds; pure, used by
:mod:`omnisync.config.build`.
"""

from __future__ import annotations

from collections.abc import Mapping

from omnisync.config.model import MAX_LEASE_SECONDS, MIN_LEASE_SECONDS, Guards


def lease_problem(seconds: float) -> str | None:
    """Why a lease of ``seconds`` cannot work, or ``None``."""
    if seconds < MIN_LEASE_SECONDS:
        return "must be at least 3s: a shorter lease is lost to a slow renewal"
    if seconds > MAX_LEASE_SECONDS:
        return "must be at most 10m: a dead replica's brands would wait that long"
    return None


def guards_from(body: object, defaults: Guards) -> Guards:
    """``defaults`` with what ``body`` (a ``guards`` object) sets. A value the
    schema refused keeps its default here; the schema's diagnostic says why."""
    if not isinstance(body, Mapping):
        return defaults
    minimum = body.get("min_members", defaults.min_members)
    allow_empty = body.get("allow_empty", defaults.allow_empty)
    return Guards(
        max_removed=_share(body.get("max_removed"), defaults.max_removed),
        max_changed=_share(body.get("max_changed"), defaults.max_changed),
        allow_empty=allow_empty if isinstance(allow_empty, bool) else defaults.allow_empty,
        min_members=minimum if isinstance(minimum, int) else defaults.min_members,
    )


def _share(text: object, default: float | None) -> float | None:
    """``"20%"`` as ``0.2``; ``"100%"`` turns a guard off (``None``)."""
    if not isinstance(text, str) or not text.endswith("%"):
        return default
    try:
        share = float(text[:-1]) / 100
    except ValueError:
        return default
    return None if share >= 1 else share
