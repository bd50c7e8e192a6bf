"""The review's renderers on a hand-built review: what a reader of a pull request sees."""

from __future__ import annotations

from omnisync.review.model import Change, Effect, MemberCounts, Review
from omnisync.review.render import render_markdown


def test_a_costed_effect_reads_as_words_then_its_cost_in_markdown() -> None:
    effect = Effect(
        code="resend_all_members",
        risk="danger",
        message="every member is sent again",
        members=10_000,
        requests=100,
    )
    review = Review(
        base="main",
        head="HEAD",
        changes=(Change(kind="export", name="vip", change="changed", effects=(effect,)),),
        members=MemberCounts(known=True, note=""),
    )
    markdown = render_markdown(review)
    assert "every member is sent again \\[10000 members, 100 requests" in markdown, markdown
