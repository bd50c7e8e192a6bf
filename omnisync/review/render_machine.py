"""A review for tools: one JSON document, or GitHub Actions annotations. Pure.

JSON: ``{"base", "head", "changes": [{"kind", "name", "change", "fields":
[{"path", "before", "after"}], "effects": [{"code", "risk", "message",
"members", "requests", "minutes", "file", "line"}], "approvers", "file",
"line"}], "summary": {...}}``.

GitHub: one workflow command per effect on the line that causes it
(``danger`` an error, ``warning`` a warning, ``info`` a notice), and a
notice on each change without effects. Files are shown relative to
``root`` (the checkout, where GitHub expects them) when they lie inside it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from omnisync.config.diagnostics import escape_data, escape_property
from omnisync.config.model import Position
from omnisync.review.model import Change, Review
from omnisync.review.render_text import cost_text

_LEVELS = {"danger": "error", "warning": "warning", "info": "notice"}


def render_json(review: Review) -> str:
    document = {
        "base": review.base,
        "head": review.head,
        "changes": [_change(change) for change in review.changes],
        "summary": review.summary(),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _change(change: Change) -> dict[str, Any]:
    return {
        "kind": change.kind,
        "name": change.name,
        "change": change.change,
        "fields": [dataclasses.asdict(field) for field in change.fields],
        "effects": [
            {
                "code": effect.code,
                "risk": effect.risk,
                "message": effect.message,
                "members": effect.members,
                "requests": effect.requests,
                "minutes": effect.minutes,
                **_where(effect.position),
            }
            for effect in change.effects
        ],
        "approvers": list(change.approvers),
        **_where(change.position),
    }


def _where(position: Position | None) -> dict[str, Any]:
    if position is None:
        return {"file": None, "line": None}
    return {"file": position.file, "line": position.line}


def render_github(review: Review, *, root: str | None = None) -> str:
    lines = []
    for change in review.changes:
        approvers = f" (approve: {', '.join(change.approvers)})" if change.approvers else ""
        for effect in change.effects:
            lines.append(
                _command(
                    _LEVELS[effect.risk],
                    effect.position or change.position,
                    f"omnisync diff: {effect.code}",
                    f"{change.title}: {effect.message}{cost_text(effect)}{approvers}",
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
                    f"{change.title} {change.change}{': ' + fields if fields else ''}{approvers}",
                    root,
                )
            )
    return "".join(lines)


def _command(level: str, position: Position | None, title: str, text: str, root: str | None) -> str:
    properties = []
    if position is not None:
        properties += [f"file={escape_property(_shown(position.file, root))}"]
        properties += [f"line={position.line}"]
    properties.append(f"title={escape_property(title)}")
    return f"::{level} {','.join(properties)}::{escape_data(text)}\n"


def _shown(file: str, root: str | None) -> str:
    if root is None or not os.path.isabs(file):
        return file
    relative = os.path.relpath(file, root)
    return file if relative.startswith("..") else relative
