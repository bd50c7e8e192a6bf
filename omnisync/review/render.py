"""A review rendered for people and tools: text, Markdown, JSON, GitHub annotations. Pure.

Secrets appear only as the references the config holds.

- Text (rich): coloured by risk when ``color`` (a terminal asked for it). rich is
  imported by the text rendering alone: the other formats need none of its imports.
- A field's values are shown on one line; quoted, with escapes, when that line would
  hide how they differ (whitespace only). Config text has its control characters
  escaped (``\\u001b``) in every format (JSON escapes them itself), and in Markdown the
  spaces HTML would collapse or strip shown as ``␠``.
- Markdown, for a pull-request comment: a summary table (one row per change:
  effects, highest risk, cost, approvers), then each change's effects and a
  table of its fields, collapsed in ``<details>`` when longer than
  :data:`COLLAPSE_AFTER_LINES`.
- JSON: ``{"base", "head", "changes": [{"kind", "name", "change", "fields":
  [{"path", "before", "after"}], "effects": [{"code", "risk", "message",
  "members", "requests", "minutes", "file", "line"}], "approvers", "file",
  "line"}], "summary": {...}}``; files relative to ``root`` when inside it.
- GitHub: one workflow command per effect on the line that causes it
  (``danger`` an error, ``warning`` a warning, ``info`` a notice), and a notice
  on each change without effects; files relative to ``root`` (the checkout)
  when inside it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
from collections.abc import Callable
from typing import Any

from omnisync.config.diagnostics import escape_data, escape_property
from omnisync.config.model import Position
from omnisync.masking import one_line
from omnisync.review.model import CHANGE_TYPES, RISKS, Change, Effect, FieldChange, Review, cost

#: Markdown details longer than this many lines are collapsed.
COLLAPSE_AFTER_LINES = 30

_MARKS = {"added": "+", "removed": "-", "changed": "~"}
_CHANGE_STYLES = {"added": "green", "removed": "red", "changed": "yellow"}
_RISK_STYLES = {"info": "cyan", "warning": "yellow", "danger": "bold red"}
_RISK_MARKS = {"danger": "🔴 danger", "warning": "🟠 warning", "info": "🔵 info", None: "—"}
_LEVELS = {"danger": "error", "warning": "warning", "info": "notice"}
_EFFECT_KEYS = ("code", "risk", "message", "members", "requests", "minutes")

#: Spaces that Markdown or HTML would strip or collapse: at either end, or in a run.
_HIDDEN_SPACES = re.compile(r"^ +| +$| {2,}")


def escape(text: str) -> str:
    """``text`` for rich markup, shown as it is: control characters visible."""
    from rich.markup import escape as escape_markup

    return escape_markup(one_line(text))


def _summary_line(review: Review) -> str:
    if not review.changes:
        return "no changes"
    summary = review.summary()  # the counts --format json shows
    effects = summary["effects"]
    assert isinstance(effects, dict)
    count = len(review.changes)
    changes = (f"{summary[kind]} {kind}" for kind in CHANGE_TYPES)
    risks = (f"{effects[risk]} {risk}" for risk in reversed(RISKS))
    return (
        f"{count} change{'' if count == 1 else 's'}: {', '.join(changes)};"
        f" effects: {', '.join(risks)}"
    )


def _members_line(review: Review) -> str:
    if review.members.known:
        return f"members: from {review.members.note}"
    return f"members: unknown ({review.members.note})"


def _cost_text(effect: Effect) -> str:
    """`` [10000 members, 80 requests, 1.33 min]``, or ``""`` when not costed."""
    parts = []
    if effect.members is not None:
        parts.append(f"{effect.members} members")
    if effect.requests is not None:
        parts.append(f"{effect.requests} requests")
    if effect.minutes is not None:
        parts.append(f"{effect.minutes:g} min")
    return f" [{', '.join(parts)}]" if parts else ""


def _approve(change: Change) -> str:
    return f" (approve: {', '.join(change.approvers)})" if change.approvers else ""


def render_text(review: Review, *, color: bool = False) -> str:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        width=100,
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"omnisync diff: {escape(review.base)} → {escape(review.head)}")
    console.print(_summary_line(review))
    console.print(escape(_members_line(review)))
    for change in review.changes:
        style = _CHANGE_STYLES[change.change]
        console.print(
            f"\n[{style}]{_MARKS[change.change]} {escape(change.title)} {change.change}[/{style}]"
            f"{escape(_approve(change))}"
        )
        for field in change.fields:
            before, after = _distinct(field, _one_line)
            console.print(f"    {escape(field.path)}: {escape(f'{before} → {after}')}")
        for effect in change.effects:
            risk_style = _RISK_STYLES[effect.risk]
            console.print(
                f"    [{risk_style}]{effect.risk} {effect.code}[/{risk_style}]:"
                f" {escape(effect.message)}{escape(_cost_text(effect))}"
            )
    if review.approvers:
        console.print(f"\napprovers: {escape(', '.join(review.approvers))}")
    return buffer.getvalue()


def _distinct(field: FieldChange, shown: Callable[[str | None], str]) -> tuple[str, str]:
    """The field's two values as ``shown`` writes them; as JSON strings (a line break as
    ``\\n``) when ``shown`` would write them alike."""
    before, after = shown(field.before), shown(field.after)
    if before != after:
        return before, after
    return shown(_quoted(field.before)), shown(_quoted(field.after))


def _quoted(text: str | None) -> str | None:
    return None if text is None else json.dumps(text, ensure_ascii=False)


def _one_line(text: str | None) -> str:
    if text is None:
        return "(none)"
    return one_line(" ⏎ ".join(line.strip() for line in text.strip().splitlines())) or '""'


def render_markdown(review: Review) -> str:
    lines = [
        f"### omnisync diff: {_code(review.base)} → {_code(review.head)}",
        "",
        _summary_line(review) + ".",
        "",
        _escape(_members_line(review)) + ".",
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
        requests, minutes = cost(change.effects)
        lines.append(
            f"| {_escape(change.kind)} {_code(change.name or '-')} | {change.change} | {codes}"
            f" | {_RISK_MARKS[change.risk]} | {'—' if requests is None else requests}"
            f" | {'—' if minutes is None else f'{minutes:g}'}"
            f" | {_escape(', '.join(change.approvers)) or '—'} |"
        )
    if review.approvers:
        lines += ["", f"**Approvers:** {_escape(', '.join(review.approvers))}"]
    details = [line for change in review.changes for line in _details(change)]
    lines.append("")
    if len(details) > COLLAPSE_AFTER_LINES:
        summary = f"<details><summary>Details of {len(review.changes)} changes</summary>"
        details = [summary, "", *details, "</details>"]
    return "\n".join(lines + details) + "\n"


def _details(change: Change) -> list[str]:
    lines = [f"#### {_escape(change.kind)} {_code(change.name or '-')} ({change.change})", ""]
    effects = [
        # One escape for both: escaping the cost alone would drop its leading space.
        f"- **{effect.risk}** `{effect.code}`: {_escape(effect.message + _cost_text(effect))}"
        for effect in change.effects
    ]
    lines += [*effects, ""] if effects else []
    if change.fields:
        lines += ["| field | before | after |", "|---|---|---|"]
        for field in change.fields:
            before, after = _distinct(field, _value)
            lines.append(f"| {_code(field.path)} | {before} | {after} |")
        lines.append("")
    return lines


def _value(text: str | None) -> str:
    return "—" if text is None else _code(text)


def _code(text: str) -> str:
    """``text`` as a code span for a table cell, on one line and shown as written, so that
    different texts look different: control characters and hidden spaces made visible,
    ``|`` escaped (it would end the cell), delimited by a backtick run longer than any in it
    (CommonMark), padded with a space (stripped again) when it starts or ends with one."""
    shown = _spaces(one_line(text)).replace("|", "\\|")
    fence = "`" * (max(map(len, re.findall("`+", shown)), default=0) + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def _spaces(text: str) -> str:
    """The spaces in ``text`` that Markdown or HTML would strip or collapse as ``␠``."""
    return _HIDDEN_SPACES.sub(lambda run: "␠" * len(run.group()), text)


def _escape(text: str) -> str:
    """Text outside code spans: Markdown and HTML specials made literal."""
    for special in ("\\", "`", "*", "_", "[", "]", "<", ">", "|", "#"):
        text = text.replace(special, "\\" + special)
    return _spaces(one_line(text))


def render_json(review: Review, *, root: str | None = None) -> str:
    changes = [
        {
            "kind": change.kind,
            "name": change.name,
            "change": change.change,
            "fields": [dataclasses.asdict(field) for field in change.fields],
            "effects": [
                {
                    **{key: getattr(effect, key) for key in _EFFECT_KEYS},
                    **_where(effect.position, root),
                }
                for effect in change.effects
            ],
            "approvers": list(change.approvers),
            **_where(change.position, root),
        }
        for change in review.changes
    ]
    document = {
        "base": review.base,
        "head": review.head,
        "changes": changes,
        "summary": review.summary(),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _where(position: Position | None, root: str | None) -> dict[str, Any]:
    if position is None:
        return {"file": None, "line": None}
    return {"file": _shown(position.file, root), "line": position.line}


def render_github(review: Review, *, root: str | None = None) -> str:
    lines = []
    for change in review.changes:
        for effect in change.effects:
            lines.append(
                _command(
                    _LEVELS[effect.risk],
                    effect.position or change.position,
                    f"omnisync diff: {effect.code}",
                    f"{change.title}: {effect.message}{_cost_text(effect)}{_approve(change)}",
                    root,
                )
            )
        if not change.effects:
            fields = ", ".join(field.path for field in change.fields)
            lines.append(
                _command(
                    "notice",
                    change.position,
                    f"omnisync diff: {change.kind} {change.change}",
                    f"{change.title} {change.change}{': ' + fields if fields else ''}"
                    f"{_approve(change)}",
                    root,
                )
            )
    return "".join(lines)


def _command(level: str, position: Position | None, title: str, text: str, root: str | None) -> str:
    properties = []
    if position is not None:
        properties += [f"file={escape_property(one_line(_shown(position.file, root)))}"]
        properties += [f"line={position.line}"]
    properties.append(f"title={escape_property(one_line(title))}")
    return f"::{level} {','.join(properties)}::{escape_data(one_line(text))}\n"


def _shown(file: str, root: str | None) -> str:
    if root is None or not os.path.isabs(file):
        return file
    relative = os.path.relpath(file, root)
    return file if relative.startswith("..") else relative
