"""The change guards, on staging counts alone."""

from __future__ import annotations

from omnisync.config.model import Guards
from omnisync.engine.guards import hold_reasons, percent
from omnisync.planning import StageCounts

DEFAULTS = Guards()


def test_an_ordinary_day_is_not_held() -> None:
    counts = StageCounts(members=10_000, new=50, changed=300, leaving=100, delivered=10_050,
                         tagged=10_050)  # fmt: skip
    assert hold_reasons(DEFAULTS, counts) == ()


def test_an_emptied_source_is_held_with_its_figures() -> None:
    counts = StageCounts(members=0, leaving=10_000, delivered=10_000, tagged=10_000)
    assert hold_reasons(DEFAULTS, counts) == (
        "the segment is empty, but 10,000 contacts carry the export's tag (allow_empty is false)",
        "would untag 10,000 of 10,000 members (100%), above max_removed 20%",
    )
    allowed = Guards(allow_empty=True, max_removed=None)
    assert hold_reasons(allowed, counts) == ()


def test_a_first_run_with_an_empty_segment_is_not_held() -> None:
    assert hold_reasons(DEFAULTS, StageCounts()) == ()


def test_removals_above_the_share_are_held_and_at_it_are_not() -> None:
    at_limit = StageCounts(members=8_000, leaving=2_000, delivered=10_000, tagged=10_000)
    assert hold_reasons(DEFAULTS, at_limit) == ()
    above = StageCounts(members=7_000, leaving=3_000, delivered=10_000, tagged=10_000)
    assert hold_reasons(DEFAULTS, above) == (
        "would untag 3,000 of 10,000 members (30%), above max_removed 20%",
    )
    assert hold_reasons(Guards(max_removed=0.5), above) == ()
    # on_leave: keep removes no tag: leavers are only "kept".
    kept = StageCounts(members=7_000, kept=3_000, delivered=10_000, tagged=10_000)
    assert hold_reasons(DEFAULTS, kept) == ()


def test_re_sending_most_members_is_held_only_when_asked() -> None:
    counts = StageCounts(members=10_000, changed=9_000, unchanged=1_000, delivered=10_000,
                         tagged=10_000)  # fmt: skip
    assert hold_reasons(DEFAULTS, counts) == ()
    assert hold_reasons(Guards(max_changed=0.5), counts) == (
        "would re-send 9,000 of 10,000 members (90%), above max_changed 50%",
    )


def test_a_minimum_of_members() -> None:
    assert hold_reasons(Guards(min_members=100), StageCounts(members=99)) == (
        "the segment has 99 members, fewer than min_members 100",
    )


def test_percentages_read_naturally() -> None:
    assert [percent(share) for share in (0.2, 0.125, 0.98123, 1.0)] == [
        "20%",
        "12.5%",
        "98.1%",
        "100%",
    ]
