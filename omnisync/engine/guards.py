"""Change guards: whether a run's plan looks like an accident. Pure.

A daemon applies whatever the segment query returns, with nobody watching.
The guards compare the staging counts with what the ledger held before the
run, before anything is mapped or sent, and say why the run should be held,
with the figures a person needs to judge it.
"""

from __future__ import annotations

from omnisync.config.model import Guards
from omnisync.planning import StageCounts


def hold_reasons(
    guards: Guards, counts: StageCounts, *, valid_members: int | None = None
) -> tuple[str, ...]:
    """Why a run with these staging ``counts`` is to be held; empty when it may go ahead.

    ``valid_members``: the members whose rows are valid (invalid ones are never sent),
    counted at least up to ``max(1, guards.min_members)``; ``None``: all of them."""
    members = counts.members if valid_members is None else valid_members
    # Said only with a reason, when ``members`` is under the threshold: then exact.
    invalid = f" ({counts.members - members:,} invalid)" if members < counts.members else ""
    reasons: list[str] = []
    if members == 0 and counts.tagged and not guards.allow_empty:
        empty = f"has no valid member{invalid}" if invalid else "is empty"
        reasons.append(
            f"the segment {empty}, but {counts.tagged:,} contacts carry the export's tag "
            "(allow_empty is false)"
        )
    elif members < guards.min_members:
        reasons.append(
            f"the segment has {members:,} {'valid ' if invalid else ''}members{invalid}, "
            f"fewer than min_members {guards.min_members:,}"
        )
    for limit, name, verb, count, among in (
        (guards.max_removed, "max_removed", "untag", counts.leaving, counts.tagged),
        (guards.max_changed, "max_changed", "re-send", counts.changed, counts.delivered),
    ):
        if limit is not None and among and count / among > limit:
            reasons.append(
                f"would {verb} {count:,} of {among:,} members "
                f"({percent(count / among)}), above {name} {percent(limit)}"
            )
    return tuple(reasons)


def percent(share: float) -> str:
    """``0.2`` as ``20%``, ``0.98123`` as ``98.1%``."""
    text = f"{share * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"
