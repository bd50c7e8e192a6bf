"""The reference planner on ledger tags in doubt (a tags call whose answer was never
recorded): the export's own tag is added again, any tag of a leaver removed again."""

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
    "doubted@example.com": LedgerEntry(fingerprint=1, tag="vip", tag_in_doubt=True),
    "doubted-changed@example.com": LedgerEntry(fingerprint=2, tag="vip", tag_in_doubt=True),
    "doubted-old@example.com": LedgerEntry(fingerprint=3, tag="vip-old", tag_in_doubt=True),
    "sure@example.com": LedgerEntry(fingerprint=4, tag="vip"),
    "left-doubted@example.com": LedgerEntry(fingerprint=5, tag="vip", tag_in_doubt=True),
    "left-doubted-old@example.com": LedgerEntry(fingerprint=6, tag="vip-old", tag_in_doubt=True),
}
ROWS = [
    SegmentRow("doubted@example.com", 1),
    SegmentRow("doubted-changed@example.com", 20),
    SegmentRow("doubted-old@example.com", 3),
    SegmentRow("sure@example.com", 4),
]


def test_a_members_tag_in_doubt_is_added_again_and_never_removed_as_an_old_one() -> None:
    plan = reference_plan(ROWS, LEDGER, tag="vip", on_leave="untag")
    assert plan.work == (
        WorkItem("doubted@example.com", 1, True, None, False, True, {}),
        WorkItem("doubted-changed@example.com", 20, True, None, True, True, {}),
        WorkItem("doubted-old@example.com", 3, True, "vip-old", False, True, {}),
    )
    doubted, changed, old = plan.work
    assert item_actions(doubted, valid=True) == ItemActions(
        upsert=False, tag=True, remove_old_tag=None
    )
    assert item_actions(changed, valid=True) == ItemActions(
        upsert=True, tag=True, remove_old_tag=None
    )
    assert item_actions(old, valid=True) == ItemActions(
        upsert=False, tag=True, remove_old_tag="vip-old"
    )
    assert plan.counts == StageCounts(
        rows=4,
        members=4,
        new=0,
        changed=1,
        tag_only=2,
        unchanged=1,
        leaving=2,
        retag=1,
        needs_tag=3,
        delivered=6,
        tagged=6,
    )


def test_a_leavers_tag_in_doubt_is_removed_again_or_kept_counted() -> None:
    untag = reference_plan(ROWS, LEDGER, tag="vip", on_leave="untag")
    assert untag.leavers == (
        Leaver("left-doubted-old@example.com", "vip-old"),
        Leaver("left-doubted@example.com", "vip"),
    )
    keep = reference_plan(ROWS, LEDGER, tag="vip", on_leave="keep")
    assert (keep.leavers, keep.counts.leaving, keep.counts.kept) == ((), 0, 2)


def test_a_tag_in_doubt_is_no_tag_to_leave_alone() -> None:
    # The same ledger in no doubt: the member whose tag is the export's is unchanged.
    sure = {email: LedgerEntry(entry.fingerprint, entry.tag) for email, entry in LEDGER.items()}
    plan = reference_plan(ROWS, sure, tag="vip", on_leave="untag")
    assert [item.email for item in plan.work] == [
        "doubted-changed@example.com",
        "doubted-old@example.com",
    ]
    assert plan.counts.unchanged == 2
