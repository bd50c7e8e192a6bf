"""Plan reports as text, JSON or Markdown: the reports of the exports that could be
planned, the failures of those that could not, as one string. Pure; reports are masked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from omnisync.engine.report import PlanReport
from omnisync.engine.results import ExportFailure, ReasonCount


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (plural or word + 's')}"


def _action_lines(report: PlanReport) -> list[tuple[str, int, str]]:
    """(label, count, note) per line: the members three ways, then the tag changes."""
    samples = report.samples
    tag_note = (
        f"{_plural(report.retag, 'also loses', 'also lose')} an old tag" if report.retag else ""
    )
    create_note = ", ".join(samples.get("new", ()))
    if not report.state_found:
        create_note = f"(no state: upper bound) {create_note}".strip()
    leaving_note = (
        ", ".join(samples.get("untag", ()))
        if report.on_leave == "untag"
        else "keep the tag (on leave: keep)"
    )
    return [
        ("to create", report.to_create, create_note),
        ("to update", report.to_update, ", ".join(samples.get("changed", ()))),
        ("unchanged", report.unchanged, ""),
        ("to tag", report.to_tag, tag_note or ", ".join(samples.get("tag", ()))),
        ("leaving", report.leaving, leaving_note),
    ]


def _segment_line(report: PlanReport) -> str:
    parts = [
        _plural(report.members, "member"),
        f"{report.invalid:,} invalid (never sent)",
        _plural(report.duplicates, "duplicate"),
    ]
    return (
        f"segment '{report.segment}' (source '{report.source}'): "
        f"{_plural(report.rows, 'row')} = " + " + ".join(parts)
    )


_NO_STATE = (
    "no state store found: what was delivered before is unknown, so every member "
    "counts as to create (an upper bound); run plan where the daemon's state_dir is "
    "reachable, or pass --require-state to make this an error"
)


def _reason_lines(reasons: Sequence[ReasonCount]) -> list[str]:
    lines = []
    width = max(len(f"{reason.count:,}") for reason in reasons)
    for reason in reasons:
        example = f"  (e.g. {', '.join(reason.examples)})" if reason.examples else ""
        lines.append(f"    {reason.count:>{width},}  {reason.reason}{example}")
    return lines


def _limit_line(report: PlanReport) -> str | None:
    if report.max_profiles is None:
        return None
    # The guard counts the profiles a run would deliver or keep: valid members.
    profiles = f"{report.members:,}"
    limit = f"{report.max_profiles:,}"
    if report.exceeds_max_profiles:
        return (
            f"max_profiles EXCEEDED: {profiles} profiles (valid members) > {limit}; "
            "the run would stop before sending anything"
        )
    return f"max_profiles: {profiles} profiles (valid members) of at most {limit}"


def render_text(reports: Sequence[PlanReport], failures: Sequence[ExportFailure] = ()) -> str:
    """A human-readable plan, one block per export, failures last."""
    blocks: list[str] = []
    for report in reports:
        lines = [
            f"export '{report.export}' -> connection '{report.connection}'"
            f"{_display_name(report)}, "
            f"tag '{report.tag_name}' (on leave: {report.on_leave})",
            "  " + _segment_line(report),
        ]
        if not report.state_found:
            lines.append("  WARNING: " + _NO_STATE)
        if report.in_flight:
            lines.append("  NOTE: " + _in_flight(report))
        lines += [f"  HELD (a run would send nothing): {hold}" for hold in report.held]
        if report.changes_nothing:
            lines.append("  nothing to send")
        actions = _action_lines(report)
        width = max(len(f"{count:,}") for _, count, _ in actions)
        for label, count, note in actions:
            suffix = f"  {note}" if note and count else ""
            lines.append(f"  {label:<10}{count:>{width},}{suffix}")
        if report.invalid:
            lines.append(f"  not sent: {_plural(report.invalid, 'invalid row')}")
            lines.extend(_reason_lines(report.invalid_reasons))
        if report.warnings:
            lines.append("  warnings:")
            lines.extend(_reason_lines(report.warnings))
        if report.duplicates:
            lines.append(
                f"  duplicates: {_plural(report.duplicates, 'row repeats', 'rows repeat')}"
                " an e-mail (the first occurrence is used), "
                f"e.g. {', '.join(report.duplicates_sample)}"
            )
        if report.with_consent:
            lines.append(
                f"  consent: {_plural(report.with_consent, 'new contact')} "
                "sent with the e-mail status recorded in the source"
            )
        limit = _limit_line(report)
        if limit is not None:
            lines.append("  " + limit)
        blocks.append("\n".join(lines))
    for failure in failures:
        blocks.append(f"export '{failure.export}': cannot plan: {failure.message}")
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def render_json(reports: Sequence[PlanReport], failures: Sequence[ExportFailure] = ()) -> str:
    """One JSON document: ``{"plans": [...], "failures": [...]}``."""
    document = {
        "plans": [report.to_dict() for report in reports],
        "failures": [asdict(failure) for failure in failures],
    }
    return json_text(document)


def _in_flight(report: PlanReport) -> str:
    return (
        f"{report.in_flight:,} contact(s) are in batches a stopped or killed run sent; a run "
        "first asks Omnisend about them and counts those it accepted as unchanged"
    )


def _display_name(report: PlanReport) -> str:
    """`` (Main store)``: the connection's display name, when it says more than its key."""
    shown = " ".join(report.connection_display_name.split())  # one line, as the plan's
    return f" ({shown})" if shown and shown != report.connection else ""


def json_text(document: object) -> str:
    """``document`` as indented JSON, one trailing newline (every ``--format json``)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def markdown_cell(text: str) -> str:
    """``text`` as one cell of a Markdown table: a ``|`` or a line break would end it."""
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(reports: Sequence[PlanReport], failures: Sequence[ExportFailure] = ()) -> str:
    """GitHub-flavoured Markdown, e.g. for a pull-request comment."""
    sections: list[str] = []
    for report in reports:
        lines = [
            f"### Export `{report.export}`",
            "",
            f"Connection `{report.connection}`{markdown_cell(_display_name(report))}, "
            f"tag `{report.tag_name}` "
            f"(on leave: {report.on_leave}); {markdown_cell(_segment_line(report))}.",
            "",
        ]
        if not report.state_found:
            lines.extend([f"> [!WARNING]\n> {markdown_cell(_NO_STATE)}", ""])
        if report.in_flight:
            lines.extend([f"> [!NOTE]\n> {markdown_cell(_in_flight(report))}", ""])
        for hold in report.held:
            lines.extend(
                [f"> [!CAUTION]\n> **Held** (a run would send nothing): {markdown_cell(hold)}", ""]
            )
        rows = [
            (label, count, note if count else "") for label, count, note in _action_lines(report)
        ]
        if report.invalid:
            rows.append(("**not sent (invalid)**", report.invalid, ""))
            rows += [
                (f"&nbsp;&nbsp;{r.reason}", r.count, ", ".join(r.examples))
                for r in report.invalid_reasons
            ]
        rows += [(f"warning: {r.reason}", r.count, ", ".join(r.examples)) for r in report.warnings]
        if report.duplicates:
            examples = ", ".join(report.duplicates_sample)
            rows.append(("duplicates (first occurrence used)", report.duplicates, examples))
        lines += ["| | count | examples |", "|---|---:|---|"]
        for label, count, note in rows:
            cell = f" {markdown_cell(note)} |" if note else " |"
            lines.append(f"| {markdown_cell(label)} | {count:,} |{cell}")
        limit = _limit_line(report)
        if limit is not None:
            bold = "**" if report.exceeds_max_profiles else ""
            lines.extend(["", f"{bold}{limit}{bold}"])
        sections.append("\n".join(lines))
    for failure in failures:
        sections.append(
            f"### Export `{failure.export}`\n\n**Cannot plan:** {markdown_cell(failure.message)}"
        )
    return "\n\n".join(sections) + ("\n" if sections else "")
