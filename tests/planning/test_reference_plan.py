"""The pure reference planner: each kind of member and leaver, by example."""

from __future__ import annotations

from omnisync.planning import (
    ItemActions,
    Leaver,
    LedgerEntry,
    SegmentRow,
    StageCounts,
    WorkItem,
    item_actions,
    reference_plan,
)

LEDGER = {
    "same@example.com": LedgerEntry(fingerprint=1, tag="vip"),
    "changed@example.com": LedgerEntry(fingerprint=2, tag="vip"),
    "untagged@example.com": LedgerEntry(fingerprint=3, tag=None),
    "renamed@example.com": LedgerEntry(fingerprint=4, tag="vip-old"),
    "left@example.com": LedgerEntry(fingerprint=5, tag="vip"),
    "left-old@example.com": LedgerEntry(fingerprint=6, tag="vip-old"),
    "left-untagged@example.com": LedgerEntry(fingerprint=7, tag=None),
}
ROWS = [
    SegmentRow("same@example.com", 1),
    SegmentRow("new@example.com", 10),
    SegmentRow(None, 11),
    SegmentRow("changed@example.com", 20),
    SegmentRow("untagged@example.com", 3),
    SegmentRow("new@example.com", 12),
    SegmentRow("renamed@example.com", 4),
    SegmentRow("same@example.com", 99),
]


def test_every_kind_of_member_and_leaver() -> None:
    plan = reference_plan(ROWS, LEDGER, tag="vip", on_leave="untag")
    assert plan.counts == StageCounts(
        rows=8,
        members=5,
        missing_email=1,
        duplicates=2,
        new=1,
        changed=1,
        tag_only=2,
        unchanged=1,
        leaving=2,
        retag=1,
        kept=0,
        needs_tag=3,
        delivered=7,
        tagged=5,
    )
    assert plan.work == (
        WorkItem("new@example.com", 10, False, None, True, True, {}),
        WorkItem("changed@example.com", 20, True, "vip", True, False, {}),
        WorkItem("untagged@example.com", 3, True, None, False, True, {}),
        WorkItem("renamed@example.com", 4, True, "vip-old", False, True, {}),
    )
    assert plan.leavers == (
        Leaver("left-old@example.com", "vip-old"),
        Leaver("left@example.com", "vip"),
    )
    assert plan.duplicates == ("same@example.com", "new@example.com")  # by first occurrence


def test_on_leave_keep_counts_leavers_but_removes_nothing() -> None:
    plan = reference_plan(ROWS, LEDGER, tag="vip", on_leave="keep")
    assert plan.leavers == ()
    assert (plan.counts.leaving, plan.counts.kept) == (0, 2)


def test_an_empty_segment_makes_every_tagged_ledger_member_a_leaver() -> None:
    plan = reference_plan([], LEDGER, tag="vip", on_leave="untag")
    assert plan.counts.leaving == 5  # every entry with a tag, whichever tag
    assert plan.counts.members == 0


def test_actions_of_an_item_depend_on_its_validity_only_when_it_needs_an_upsert() -> None:
    new = WorkItem("a@example.com", 1, False, None, True, True, {})
    renamed = WorkItem("b@example.com", 1, True, "old", False, True, {})
    changed_renamed = WorkItem("c@example.com", 2, True, "old", True, True, {})
    assert item_actions(new, valid=True) == ItemActions(True, True, None)
    assert item_actions(new, valid=False) == ItemActions(False, False, None)
    assert item_actions(renamed, valid=True) == ItemActions(False, True, "old")
    assert item_actions(changed_renamed, valid=False) == ItemActions(False, False, None)
    assert renamed.old_tag == "old"
    assert WorkItem("d@example.com", 1, True, "vip", True, False, {}).old_tag is None
