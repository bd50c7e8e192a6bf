"""The review's renderers on a hand-built review: what a reader of a pull request sees."""

from __future__ import annotations

import re
from html import unescape

from markdown_it import MarkdownIt

from omnisync.config.model import Position
from omnisync.review.model import Change, Effect, FieldChange, MemberCounts, Review
from omnisync.review.render import render_github, render_markdown, render_text


def _review(*changes: Change) -> Review:
    return Review(base="main", head="HEAD", changes=changes, members=MemberCounts(True, ""))


def _table_rows(markdown: str) -> list[list[str]]:
    """The table cells' text as a GitHub-flavoured Markdown reader sees it."""
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    return [
        [unescape(re.sub("<[^>]+>", "", cell)) for cell in re.findall("<td>(.*?)</td>", row)]
        for row in re.findall("<tr>(.*?)</tr>", html, re.DOTALL)
    ]


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


def test_markdown_shows_values_that_differ_as_different_and_as_written() -> None:
    pairs = {
        "query": ("SELECT `email` FROM customers", "SELECT 'email' FROM customers"),
        "tag": ("news letter", "news  letter"),
        "filter": ("a|b", "a¦b"),
        "padded": ("`x` ", " `x`"),
    }
    fields = tuple(FieldChange(path, *values) for path, values in pairs.items())
    message = "the tag changes from 'news letter' to 'news  letter'"
    effect = Effect(code="retag_all_members", risk="warning", message=message)
    change = Change(kind="export", name="news", change="changed", fields=fields, effects=(effect,))
    markdown = render_markdown(_review(change))
    rows = {row[0]: row[1:] for row in _table_rows(markdown) if len(row) == 3}
    assert rows == {
        "query": ["SELECT `email` FROM customers", "SELECT 'email' FROM customers"],
        "tag": ["news letter", "news␠␠letter"],
        "filter": ["a|b", "a¦b"],
        "padded": ["`x`␠", "␠`x`"],
    }, markdown
    assert "from 'news letter' to 'news␠␠letter'" in markdown, markdown


def test_control_characters_from_a_config_are_shown_escaped_in_every_text_format() -> None:
    # Hidden text, an OSC-8 link, a C1 CSI: each would drive the reviewer's terminal.
    hidden = "Main \x1b[8mHIDDEN\x1b[0m \x1b]8;;https://example.org\x07link\x1b]8;;\x07 \x9b8m"
    change = Change(
        kind="connection",
        name="main\x1b[8m",
        change="changed",
        fields=(
            FieldChange("display_name", "Main store", hidden),
            FieldChange("query", "a\x1b", "a\\u001b"),  # different, so shown different
        ),
        effects=(Effect(code="some_effect", risk="warning", message=f"shows {hidden}"),),
        position=Position(file="omnisync.yaml", line=3, column=3),
    )
    outputs = {
        "text": render_text(_review(change)),
        "color": render_text(_review(change), color=True),
        "markdown": render_markdown(_review(change)),
        "github": render_github(_review(change)),
    }
    for form, output in outputs.items():
        raw = [code for code in ("\x1b[8m", "\x1b]", "\x07", "\x9b") if code in output]
        assert not raw, (form, output)
        assert "\\u001b[8mHIDDEN\\u001b[0m \\u001b]8;;https" in output, (form, output)
        assert "main\\u001b[8m" in output, (form, output)
    query = next(line for line in outputs["text"].splitlines() if "query:" in line)
    before, after = query.split(": ", 1)[1].split(" → ")
    assert before != after, query
