"""The SQL diff on ledger tags in doubt, against a SQLite and a PostgreSQL store alike, held
equal to the reference planner: the export's own tag in doubt is added again (never removed
as an old tag), a leaver's tag in doubt removed again, and every count still adds up.

The doubt is set as a run sets it, by ``LedgerStore.mark_tag_in_doubt`` (a tags call about
to leave whose answer never came).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnisync.config.model import OnLeave
from omnisync.emails import normalise_email
from omnisync.fingerprint import Fingerprinter
from omnisync.planning import LedgerEntry, SegmentRow, StageCounts, WorkItem, reference_plan
from tests.staging.test_diff_property import BASES, scenarios
from tests.staging.test_stage_postgres import (
    NOW,
    Entry,
    Seen,
    Stores,
    config_for,
    export_of,
    fingerprint,
    same_on_both,
    stores,
    write_segment,
)

__all__ = ["stores"]  # the fixture, imported for this module's tests


def record(stores: Stores, entries: list[Entry], doubted: dict[str, set[str]]) -> None:
    """``entries`` delivered, then ``doubted`` (tag -> e-mails of ``vip``) in doubt."""
    stores.record(entries)
    for store in stores.both():
        for tag, emails in doubted.items():
            store.mark_tag_in_doubt("vip", tag, emails, adding=False, now=NOW)


def bare(work: tuple[WorkItem, ...]) -> list[tuple[object, ...]]:
    """The work items without their rows (the reference is given none)."""
    return [tuple(item)[:6] for item in work]


SEGMENT: list[tuple[str | None, str | None]] = [
    ("doubted@example.com", "Олена"),
    ("doubted-changed@example.com", "Jonas"),
    ("doubted-old@example.com", "Taras"),
    ("sure@example.com", "Marta"),
    ("new@example.com", "Zoë 🎉"),
]
LEDGER: list[Entry] = [
    ("vip", "doubted@example.com", fingerprint("doubted@example.com", "Олена"), "vip"),
    ("vip", "doubted-changed@example.com", 1, "vip"),
    ("vip", "doubted-old@example.com", fingerprint("doubted-old@example.com", "Taras"), "old"),
    ("vip", "sure@example.com", fingerprint("sure@example.com", "Marta"), "vip"),
    ("vip", "left@example.com", 2, "vip"),
    ("vip", "left-old@example.com", 3, "old"),
    # Another export's tag is never in this export's doubt.
    ("news", "sure@example.com", 4, "vip"),
]
DOUBTED = {
    "vip": {"doubted@example.com", "doubted-changed@example.com", "left@example.com"},
    "old": {"doubted-old@example.com", "left-old@example.com"},
}


@pytest.mark.parametrize("on_leave", ["untag", "keep"])
def test_tags_in_doubt_are_sent_again_and_counted_alike_in_either_store(
    tmp_path: Path, stores: Stores, on_leave: OnLeave
) -> None:
    write_segment(tmp_path / "cdp.sqlite", SEGMENT)
    record(stores, LEDGER, DOUBTED)
    found = same_on_both(config_for(tmp_path, on_leave), stores)
    assert bare(found.work) == [
        ("doubted@example.com", found.work[0].fingerprint, True, None, False, True),
        ("doubted-changed@example.com", found.work[1].fingerprint, True, None, True, True),
        ("doubted-old@example.com", found.work[2].fingerprint, True, "old", False, True),
        ("new@example.com", found.work[3].fingerprint, False, None, True, True),
    ]
    gone = 2
    assert found.counts == StageCounts(
        rows=5,
        members=5,
        new=1,
        changed=1,
        tag_only=2,
        unchanged=1,
        leaving=gone if on_leave == "untag" else 0,
        retag=1,
        kept=0 if on_leave == "untag" else gone,
        needs_tag=4,
        delivered=6,
        tagged=6,
    )
    leavers = [(leaver.email, leaver.tag) for leaver in found.leavers]
    expected = [("left-old@example.com", "old"), ("left@example.com", "vip")]
    assert leavers == (expected if on_leave == "untag" else [])


def test_a_resync_counts_tags_in_doubt_once(tmp_path: Path, stores: Stores) -> None:
    write_segment(tmp_path / "cdp.sqlite", SEGMENT)
    record(stores, LEDGER, DOUBTED)
    found = same_on_both(config_for(tmp_path), stores, full=True)
    assert (found.counts.changed, found.counts.leaving, found.counts.retag) == (4, 2, 1)


# -- a property: any segment, any ledger, any doubt --------------------------------------


@st.composite
def doubted_scenarios(draw: st.DrawFn) -> dict[str, object]:
    return {**draw(scenarios()), "doubted": draw(st.sets(st.sampled_from(BASES)))}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=doubted_scenarios(), full=st.booleans())
def test_any_ledger_in_doubt_diffs_as_the_reference_plans_in_either_store(
    tmp_path: Path, stores: Stores, scenario: dict[str, object], full: bool
) -> None:
    rows: list[tuple[str | None, str | None]] = scenario["rows"]  # type: ignore[assignment]
    tag: str = scenario["tag"]  # type: ignore[assignment]
    on_leave: OnLeave = scenario["on_leave"]  # type: ignore[assignment]
    doubted: set[str] = scenario["doubted"]  # type: ignore[assignment]
    export = export_of(on_leave, tag)
    fingerprinter = Fingerprinter(export)
    segment = [
        SegmentRow(normalise_email(email), fingerprinter(email, value), {}) for email, value in rows
    ]
    firsts: dict[str, int] = {}
    for row in segment:
        if row.email is not None:
            firsts.setdefault(row.email, row.fingerprint)
    plan: dict[str, tuple[str, str | None, int]] = scenario["ledger"]  # type: ignore[assignment]
    ledger = {
        email: LedgerEntry(
            firsts[email] if which == "same" and email in firsts else other,
            entry_tag,
            tag_in_doubt=entry_tag is not None and email in doubted,
        )
        for email, (which, entry_tag, other) in plan.items()
    }
    foreign: dict[str, str | None] = scenario["foreign"]  # type: ignore[assignment]
    config = replace(config_for(tmp_path), exports={"vip": export})
    stores.reset(config.connections["main"].brand)
    doubted_tags: dict[str, set[str]] = {}
    for email, entry in ledger.items():
        if entry.tag_in_doubt and entry.tag is not None:
            doubted_tags.setdefault(entry.tag, set()).add(email)
    record(
        stores,
        [("vip", email, entry.fingerprint, entry.tag) for email, entry in ledger.items()]
        + [("news", email, 0, foreign_tag) for email, foreign_tag in foreign.items()],
        doubted_tags,
    )
    write_segment(tmp_path / "cdp.sqlite", rows)
    found: Seen = same_on_both(config, stores, full=full)
    counts = found.counts
    # Whatever the doubt, every tagged entry is a member's or a leaver's, once.
    left = sum(entry.tag is not None and email not in firsts for email, entry in ledger.items())
    assert counts.leaving + counts.kept == left
    assert counts.new + counts.changed + counts.tag_only + counts.unchanged == counts.members
    if not full:
        expected = reference_plan(segment, ledger, tag=tag, on_leave=on_leave)
        assert counts == expected.counts
        assert bare(found.work) == bare(expected.work)
        assert found.leavers == expected.leavers
