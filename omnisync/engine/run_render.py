"""A run's result for people (text) and tools (JSON). Pure; everything shown is masked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any, cast, get_args

from omnisync.engine.plan_render import json_text
from omnisync.engine.results import FailureSample, ReasonCount, RunCounts, RunOutcome, RunResult


def result_as_dict(result: RunResult) -> dict[str, Any]:
    """The ``--format json`` document of one run."""
    data = asdict(result)
    # Lists, as JSON reads back (the daemon hands this document on in-process too).
    data["duplicates_sample"] = list(result.duplicates_sample)
    data["failure_samples"] = list(data["failure_samples"])
    data["invalid_reasons"] = [
        {"reason": reason.reason, "count": reason.count, "examples": list(reason.examples)}
        for reason in result.invalid_reasons
    ]
    data["warnings"] = [
        {"warning": warning.reason, "count": warning.count} for warning in result.warnings
    ]
    return data


def render_json(result: RunResult) -> str:
    return json_text(result_as_dict(result))


def render_text(result: RunResult) -> str:
    """A short summary: what was read, sent and recorded, and what is left."""
    counts = result.counts
    lines = [_headline(result)]
    if result.status == "failed" and not counts.rows:
        lines.append(f"  {result.error}")
        lines.append("  nothing was sent")
        return "\n".join(lines) + "\n"
    lines.append(
        f"  segment: {counts.rows:,} rows = {counts.members:,} members "
        f"+ {counts.invalid:,} invalid (never sent) + {counts.duplicates:,} duplicates"
    )
    lines.append(
        f"  members: {counts.to_create:,} to create, {counts.to_update:,} to update, "
        f"{counts.unchanged:,} unchanged; {counts.to_tag:,} to tag, "
        f"{counts.leaving:,} leaving ({counts.to_untag:,} to untag)"
    )
    if counts.settled:
        lines.append(
            f"  recorded {counts.settled:,} upserts an interrupted run had sent (not sent again)"
        )
    lines.append(
        f"  upserts: {counts.upserted:,} of {counts.upserts_planned:,} acknowledged, "
        f"{counts.upsert_failed:,} refused"
    )
    lines.append(
        f"  tags: {counts.tagged:,} added, {counts.untagged:,} removed, "
        f"{counts.tag_failed:,} failed"
    )
    if counts.invalid:
        lines.append(f"  invalid rows (never sent): {counts.invalid:,}")
        for reason in result.invalid_reasons:
            examples = ", ".join(reason.examples)
            example = f" (e.g. {examples})" if examples else ""
            lines.append(f"    {reason.count:,}: {reason.reason}{example}")
    for warning in result.warnings:
        lines.append(f"  warning ({warning.count:,}): {warning.reason}")
    if result.duplicates_sample:
        lines.append(f"  duplicates, e.g.: {', '.join(result.duplicates_sample)}")
    for sample in result.failure_samples:
        lines.append(f"  failed: {sample.subject}: {sample.reason}")
    lines.append(
        f"  Omnisend requests: {counts.requests:,} ({counts.batches:,} "
        f"batch{'' if counts.batches == 1 else 'es'}"
        + (f", {counts.rate_limited:,} rate-limited" if counts.rate_limited else "")
        + ")"
    )
    if counts.pending:
        left = (
            "not sent (run the full resync again to finish)"
            if result.full
            else "left for the next run"
        )
        lines.append(f"  {left}: {counts.pending:,} operation(s)")
    if result.error and result.status != "succeeded":
        label = {"failed": "error", "held": "held, nothing sent"}.get(result.status, "note")
        lines.append(f"  {label}: {result.error}")
    return "\n".join(lines) + "\n"


def _headline(result: RunResult) -> str:
    details = []
    if result.run_id is not None:
        details.append(f"run {result.run_id}")
    if result.started_at and result.ended_at:
        took = datetime.fromisoformat(result.ended_at) - datetime.fromisoformat(result.started_at)
        details.append(f"{took.total_seconds():.1f} s")
    if result.config_revision:
        details.append(f"config {result.config_revision}")
    headline = f"export {result.export}: {result.status}"
    return f"{headline} ({', '.join(details)})" if details else headline


def result_from_document(document: Mapping[str, Any], export: str) -> RunResult:
    """The :class:`RunResult` whose ``result_as_dict`` document this is; a missing or
    malformed part reads as empty."""
    return RunResult(
        export=str(document.get("export") or export),
        status=_outcome(document.get("status")),
        counts=run_counts(document.get("counts")),
        run_id=_number(document.get("run_id")),
        trigger=str(document.get("trigger") or ""),
        config_revision=str(document.get("config_revision") or ""),
        started_at=str(document.get("started_at") or ""),
        ended_at=str(document.get("ended_at") or ""),
        error=_text(document.get("error")),
        stopped=document.get("stopped") is True,
        full=document.get("full") is True,
        invalid_reasons=tuple(
            ReasonCount(
                str(item["reason"]),
                _count(item.get("count")),
                tuple(str(example) for example in item.get("examples") or ()),
            )
            for item in _list(document.get("invalid_reasons"))
            if "reason" in item
        ),
        warnings=tuple(
            ReasonCount(str(item["warning"]), _count(item.get("count")))
            for item in _list(document.get("warnings"))
            if "warning" in item
        ),
        duplicates_sample=tuple(str(email) for email in document.get("duplicates_sample") or ()),
        failure_samples=tuple(
            FailureSample(subject=str(item.get("subject", "")), reason=str(item.get("reason", "")))
            for item in _list(document.get("failure_samples"))
        ),
    )


def _outcome(status: object) -> RunOutcome:
    """The run's own outcome; anything else (``skipped``, ``interrupted``) reads as failed."""
    return cast(RunOutcome, status) if status in get_args(RunOutcome) else "failed"


def run_counts(values: object) -> RunCounts:
    """A JSON object of counts as :class:`RunCounts`; what is not a count is left out."""
    if not isinstance(values, dict):
        return RunCounts()
    return RunCounts.from_mapping(
        {name: value for name, value in values.items() if _number(value) is not None}
    )


def _list(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _number(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _count(value: object) -> int:
    return _number(value) or 0


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
