"""A :class:`~omnisync.engine.drift.DriftReport` as text, JSON or Markdown.

Every e-mail is masked (:func:`omnisync.masking.mask_email`): a drift report
is pasted into tickets and chat. Field *names* are shown, never their values.
"""

from __future__ import annotations

import json
from typing import Any

from omnisync.engine.drift import PROBLEMS, DriftFinding, DriftReport
from omnisync.engine.plan_render import markdown_cell
from omnisync.masking import mask_email

#: How each problem reads in text and Markdown.
PROBLEM_WORDS: dict[str, str] = {
    "missing": "contact missing in Omnisend",
    "tag_missing": "tag missing",
    "tag_on_non_member": "tag on a non-member",
    "fields": "fields differ",
}


def _scope(report: DriftReport) -> str:
    if report.sample is None or report.checked < report.sample:
        what = f"all {report.checked} delivered contacts"
    else:
        seeded = f", seed {report.seed}" if report.seed is not None else ""
        what = f"a sample of {report.checked} of {report.delivered} delivered contacts{seeded}"
    skipped = report.skipped_in_flight
    if skipped:
        what += f" ({skipped} skipped: in a batch still in flight)"
    return what


def _describe(finding: DriftFinding) -> str:
    parts = []
    for problem in finding.problems:
        words = PROBLEM_WORDS[problem]
        if problem in ("tag_missing", "tag_on_non_member") and finding.tag:
            words += f" ({finding.tag!r})"
        if problem == "fields":
            words += f": {', '.join(finding.fields)}"
        parts.append(words)
    return "; ".join(parts)


def _repair_line(report: DriftReport) -> str | None:
    if report.repaired:
        return (
            f"repair: {report.marked_for_resend} marked to be re-sent and re-tagged, "
            f"{report.marked_tagged} to be untagged, by the next run"
        )
    if report.drifted:
        return "run `omnisync drift EXPORT --repair` to have the next run mend these"
    return None


def render_text(report: DriftReport) -> str:
    lines = [f"export {report.export} (tag {report.tag!r}): checked {_scope(report)}"]
    if not report.drifted:
        lines.append("  no drift: Omnisend holds what the ledger says was delivered")
    else:
        counts = ", ".join(
            f"{report.count(problem)} {PROBLEM_WORDS[problem]}"
            for problem in PROBLEMS
            if report.count(problem)
        )
        lines.append(f"  drift in {len(report.findings)} contact(s): {counts}")
        lines.extend(
            f"    {mask_email(finding.email)}: {_describe(finding)}" for finding in report.findings
        )
    if report.unsubscribed:
        lines.append(
            f"  unsubscribed in Omnisend (information, never changed): {len(report.unsubscribed)}"
        )
        lines.extend(f"    {mask_email(email)}" for email in report.unsubscribed)
    repair = _repair_line(report)
    if repair:
        lines.append(f"  {repair}")
    return "\n".join(lines) + "\n"


def report_as_dict(report: DriftReport) -> dict[str, Any]:
    return {
        "export": report.export,
        "tag": report.tag,
        "drift": report.drifted,
        "delivered": report.delivered,
        "checked": report.checked,
        "skipped_in_flight": report.skipped_in_flight,
        "sample": report.sample,
        "seed": report.seed,
        "counts": {problem: report.count(problem) for problem in PROBLEMS},
        "findings": [
            {
                "email": mask_email(finding.email),
                "problems": list(finding.problems),
                "fields": list(finding.fields),
            }
            for finding in report.findings
        ],
        "unsubscribed": [mask_email(email) for email in report.unsubscribed],
        "repair": {
            "done": report.repaired,
            "marked_for_resend": report.marked_for_resend,
            "marked_for_untag": report.marked_tagged,
        },
    }


def render_json(report: DriftReport) -> str:
    return json.dumps(report_as_dict(report), ensure_ascii=False, indent=2) + "\n"


def render_markdown(report: DriftReport) -> str:
    verdict = "drift found" if report.drifted else "no drift"
    lines = [
        f"### omnisync drift: `{report.export}` — {verdict}",
        "",
        f"Checked {_scope(report)}; tag `{report.tag}`.",
        "",
    ]
    if report.drifted:
        lines += ["| contact | problem |", "|---|---|"]
        for finding in report.findings:
            contact = markdown_cell(mask_email(finding.email))
            lines.append(f"| `{contact}` | {markdown_cell(_describe(finding))} |")
        lines.append("")
    if report.unsubscribed:
        lines.append(
            f"{len(report.unsubscribed)} contact(s) unsubscribed in Omnisend "
            "(information, never changed)."
        )
        lines.append("")
    repair = _repair_line(report)
    if repair:
        lines += [repair[0].upper() + repair[1:] + ".", ""]
    return "\n".join(lines)
