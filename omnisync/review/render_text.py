"""A review as text for a terminal: coloured by risk when the output is one (rich). Pure.

The text is rendered into a string; ``color`` decides whether it carries
terminal styles. Secrets appear only as the references the config holds.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.markup import escape

from omnisync.review.model import Change, Effect, Review

_MARKS = {"added": "+", "removed": "-", "changed": "~"}
_CHANGE_STYLES = {"added": "green", "removed": "red", "changed": "yellow"}
_RISK_STYLES = {"info": "cyan", "warning": "yellow", "danger": "bold red"}


def render_text(review: Review, *, color: bool = False, width: int = 100) -> str:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        width=width,
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"omnisync diff: {escape(review.base)} → {escape(review.head)}")
    console.print(summary_line(review))
    console.print(members_line(review))
    for change in review.changes:
        console.print()
        _print_change(console, change)
    if review.approvers:
        console.print()
        console.print(f"approvers: {escape(', '.join(review.approvers))}")
    return buffer.getvalue()


def summary_line(review: Review) -> str:
    summary = review.summary()
    if not review.changes:
        return "no changes"
    effects = summary["effects"]
    assert isinstance(effects, dict)
    risks = ", ".join(f"{effects[risk]} {risk}" for risk in ("danger", "warning", "info"))
    count = len(review.changes)
    return (
        f"{count} change{'' if count == 1 else 's'}: {summary['added']} added,"
        f" {summary['removed']} removed, {summary['changed']} changed; effects: {risks}"
    )


def members_line(review: Review) -> str:
    if review.counts_known:
        return f"members: from {review.counts_note}"
    return f"members: unknown ({review.counts_note})"


def cost_text(effect: Effect) -> str:
    """`` [10000 members, 80 requests, 1.33 min]``, or ``""`` when not costed."""
    parts = []
    if effect.members is not None:
        parts.append(f"{effect.members} members")
    if effect.requests is not None:
        parts.append(f"{effect.requests} requests")
    if effect.minutes is not None:
        parts.append(f"{effect.minutes:g} min")
    return f" [{', '.join(parts)}]" if parts else ""


def _print_change(console: Console, change: Change) -> None:
    style = _CHANGE_STYLES[change.change]
    approvers = f" (approve: {', '.join(change.approvers)})" if change.approvers else ""
    console.print(
        f"[{style}]{_MARKS[change.change]} {escape(change.title)} {change.change}[/{style}]"
        f"{escape(approvers)}"
    )
    for field in change.fields:
        console.print(f"    {escape(field.path)}: {escape(_arrow(field.before, field.after))}")
    for effect in change.effects:
        risk_style = _RISK_STYLES[effect.risk]
        console.print(
            f"    [{risk_style}]{effect.risk} {effect.code}[/{risk_style}]:"
            f" {escape(effect.message)}{escape(cost_text(effect))}"
        )


def _arrow(before: str | None, after: str | None) -> str:
    return f"{_one_line(before)} → {_one_line(after)}"


def _one_line(text: str | None) -> str:
    if text is None:
        return "(none)"
    return " ⏎ ".join(line.strip() for line in text.strip().splitlines()) or '""'
