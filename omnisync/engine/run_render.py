"""A run's result for people (text) and tools (JSON). Pure: strings in, strings out.

Everything shown is already safe to print: e-mails are masked by the engine,
errors carry no secret.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from omnisync.engine.results import RunResult


def result_as_dict(result: RunResult) -> dict[str, Any]:
    """The ``--format json`` document of one run."""
    return {
        "export": result.export,
        "status": result.status,
        "run_id": result.run_id,
        "trigger": result.trigger,
        "config_revision": result.config_revision,
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "stopped": result.stopped,
        "error": result.error,
        "counts": result.counts.as_dict(),
        "invalid_reasons": [
            {
                "reason": reason,
                "count": count,
                "examples": list(result.invalid_samples.get(reason, ())),
            }
            for reason, count in result.invalid_reasons.items()
        ],
        "warnings": [
            {"warning": warning, "count": count} for warning, count in result.warnings.items()
        ],
        "duplicates_sample": list(result.duplicates_sample),
        "failure_samples": [
            {"subject": sample.subject, "reason": sample.reason}
            for sample in result.failure_samples
        ],
    }


def render_json(result: RunResult) -> str:
    return json.dumps(result_as_dict(result), ensure_ascii=False, indent=2) + "\n"


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
        for reason, count in result.invalid_reasons.items():
            examples = ", ".join(result.invalid_samples.get(reason, ()))
            lines.append(f"    {count:,}: {reason}" + (f" (e.g. {examples})" if examples else ""))
    for warning, count in result.warnings.items():
        lines.append(f"  warning ({count:,}): {warning}")
    if result.duplicates_sample:
        lines.append(f"  duplicates, e.g.: {', '.join(result.duplicates_sample)}")
    for sample in result.failure_samples:
        lines.append(f"  refused: {sample.subject}: {sample.reason}")
    lines.append(
        f"  Omnisend requests: {counts.requests:,} ({counts.batches:,} "
        f"batch{'' if counts.batches == 1 else 'es'}"
        + (f", {counts.rate_limited:,} rate-limited" if counts.rate_limited else "")
        + ")"
    )
    if counts.pending:
        lines.append(f"  left for the next run: {counts.pending:,} operation(s)")
    if result.error and result.status != "succeeded":
        label = {"failed": "error", "held": "held, nothing sent"}.get(result.status, "note")
        lines.append(f"  {label}: {result.error}")
    return "\n".join(lines) + "\n"


def _headline(result: RunResult) -> str:
    took = _seconds(result.started_at, result.ended_at)
    parts = [f"export {result.export}: {result.status}"]
    details = []
    if result.run_id is not None:
        details.append(f"run {result.run_id}")
    if took is not None:
        details.append(f"{took:.1f} s")
    if result.config_revision:
        details.append(f"config {result.config_revision}")
    if details:
        parts.append(f"({', '.join(details)})")
    return " ".join(parts)


def _seconds(started: str, ended: str) -> float | None:
    if not started or not ended:
        return None
    return (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
