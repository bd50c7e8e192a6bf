"""A review as Markdown for a pull-request comment. Pure.

A summary table (one row per change: effects, highest risk, cost,
approvers), then the details of each change: its effects and a table of its
fields. The details are collapsed in a ``<details>`` block when long.
"""

from __future__ import annotations

from omnisync.review.model import Change, Review
from omnisync.review.render_text import cost_text, members_line, summary_line

#: Details longer than this many lines are collapsed.
COLLAPSE_AFTER_LINES = 30

_RISK_MARKS = {"danger": "🔴 danger", "warning": "🟠 warning", "info": "🔵 info", None: "—"}


def render_markdown(review: Review) -> str:
    lines = [
        f"### omnisync diff: `{_code(review.base)}` → `{_code(review.head)}`",
        "",
        summary_line(review) + ".",
        "",
        _escape(members_line(review)) + ".",
        "",
    ]
    if not review.changes:
        return "\n".join(lines)
    lines += [
        "| object | change | effects | risk | requests | minutes | approvers |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for change in review.changes:
        codes = ", ".join(f"`{effect.code}`" for effect in change.effects) or "—"
        costed = [effect for effect in change.effects if effect.requests is not None]
        requests = str(sum(e.requests or 0 for e in costed)) if costed else "—"
        minutes = f"{sum(e.minutes or 0.0 for e in costed):g}" if costed else "—"
        lines.append(
            f"| {_escape(change.kind)} `{_code(change.name or '-')}` | {change.change} | {codes}"
            f" | {_RISK_MARKS[change.risk]} | {requests} | {minutes}"
            f" | {_escape(', '.join(change.approvers)) or '—'} |"
        )
    if review.approvers:
        lines += ["", f"**Approvers:** {_escape(', '.join(review.approvers))}"]
    details: list[str] = []
    for change in review.changes:
        details += _details(change)
    lines.append("")
    if len(details) > COLLAPSE_AFTER_LINES:
        lines += [
            f"<details><summary>Details of {len(review.changes)} changes</summary>",
            "",
            *details,
            "</details>",
        ]
    else:
        lines += details
    return "\n".join(lines) + "\n"


def _details(change: Change) -> list[str]:
    lines = [f"#### {_escape(change.kind)} `{_code(change.name or '-')}` ({change.change})", ""]
    for effect in change.effects:
        lines.append(
            f"- **{effect.risk}** `{effect.code}`: {_escape(effect.message)}"
            f"{_escape(cost_text(effect))}"
        )
    if change.effects:
        lines.append("")
    if change.fields:
        lines += ["| field | before | after |", "|---|---|---|"]
        for field in change.fields:
            lines.append(
                f"| `{_code(field.path)}` | {_value(field.before)} | {_value(field.after)} |"
            )
        lines.append("")
    return lines


def _value(text: str | None) -> str:
    if text is None:
        return "—"
    return f"`{_code(' '.join(text.split()))}`"


def _code(text: str) -> str:
    """Text for inside a code span in a table: no backticks, no pipes, one line."""
    return " ".join(text.replace("`", "'").replace("|", "¦").split())


def _escape(text: str) -> str:
    """Text outside code spans: Markdown and HTML specials made literal."""
    for special in ("\\", "`", "*", "_", "[", "]", "<", ">", "|", "#"):
        text = text.replace(special, "\\" + special)
    return " ".join(text.split())
