"""Change guards: whether a run's plan looks like an accident. Pure.

A daemon applies whatever the segment query returns, every tick, with nobody
watching. :func:`hold_reasons` compares what the staging found with what the
ledger held before the run (``StageCounts.delivered`` and ``tagged``) and
says why the run should be held instead of applied, with the figures, so a
person can judge it ("would untag 9,812 of 10,000 members (98.1%), above
max_removed 20%"). The guards look at the segment before it is mapped, so
they cost nothing and stop a run before anything is sent.
"""

from __future__ import annotations

from omnisync.config.model import Guards
from omnisync.planning import StageCounts


def hold_reasons(guards: Guards, counts: StageCounts) -> tuple[str, ...]:
    """Why a run with these staging ``counts`` is to be held; empty when it may go ahead."""
    reasons: list[str] = []
    if counts.members == 0 and counts.tagged and not guards.allow_empty:
        reasons.append(
            f"the segment is empty, but {counts.tagged:,} contacts carry the export's tag "
            "(allow_empty is false)"
        )
    elif counts.members < guards.min_members:
        reasons.append(
            f"the segment has {counts.members:,} members, fewer than min_members "
            f"{guards.min_members:,}"
        )
    if guards.max_removed is not None and counts.tagged and counts.leaving:
        share = counts.leaving / counts.tagged
        if share > guards.max_removed:
            reasons.append(
                f"would untag {counts.leaving:,} of {counts.tagged:,} members "
                f"({percent(share)}), above max_removed {percent(guards.max_removed)}"
            )
    if guards.max_changed is not None and counts.delivered and counts.changed:
        share = counts.changed / counts.delivered
        if share > guards.max_changed:
            reasons.append(
                f"would re-send {counts.changed:,} of {counts.delivered:,} members "
                f"({percent(share)}), above max_changed {percent(guards.max_changed)}"
            )
    return tuple(reasons)


def percent(share: float) -> str:
    """``0.2`` as ``20%``, ``0.98123`` as ``98.1%``."""
    text = f"{share * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"
