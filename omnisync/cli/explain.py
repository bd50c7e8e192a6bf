"""omnisync explain EMAIL: everything omnisync knows about one e-mail, per export.

Whether it is in the segment, what the mapping makes of its row (or why it is
invalid), what was last delivered, what is in flight and what the next run
would do. Only that e-mail appears in full. Reads the segments and the state
store; sends and changes nothing, never resolves an API key.

Exit status: 0 explained, 1 a source or the state store unreadable (the other
exports are still explained), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from contextlib import nullcontext
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from omnisync.cli.common import add_format, chosen_exports, cli_config, fail, write, write_json
from omnisync.cli.main import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from omnisync.config.location import add_config_argument

# The engine and the state store are imported by handle(): `omnisync --help` imports
# every command's module.
if TYPE_CHECKING:
    from omnisync.engine.explain import ExportExplanation


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("email", metavar="EMAIL", help="the e-mail address to explain")
    parser.add_argument(
        "--export",
        action="append",
        metavar="NAME",
        dest="exports",
        help="only this export (repeatable; default: every export)",
    )
    add_config_argument(parser)
    add_format(parser)


def handle(args: argparse.Namespace) -> int:
    from omnisync.emails import normalise_email
    from omnisync.engine.explain import explain_email
    from omnisync.engine.results import ExportFailure
    from omnisync.errors import OmnisyncError
    from omnisync.state.opening import open_existing_store

    loaded = cli_config(args)
    email = normalise_email(args.email)
    if email is None:
        return fail("omnisync explain: the e-mail is empty", EXIT_USAGE)
    names = chosen_exports(loaded, args.exports or [], command="explain")
    now = datetime.now(UTC)
    explained: list[ExportExplanation] = []
    failures: list[ExportFailure] = []
    try:
        store = open_existing_store(loaded.daemon, environ=os.environ)
    except OmnisyncError as error:
        return fail(f"omnisync explain: {error}")
    with store or nullcontext():
        for name in names:
            try:
                explained.append(
                    explain_email(loaded, email, name, store=store, now=now, environ=os.environ)
                )
            except (OmnisyncError, OSError, sqlite3.Error) as error:
                failures.append(ExportFailure(name, str(error)))
    if args.format == "json":
        write_json(
            {
                "email": email,
                "exports": [asdict(item) for item in explained],
                "failures": [asdict(item) for item in failures],
            }
        )
    else:
        write(render_text(email, explained))
    for failure in failures:
        print(f"omnisync explain: export '{failure.export}': {failure.message}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def render_text(email: str, explained: list[ExportExplanation]) -> str:
    lines = [email]
    for item in explained:
        lines.append(f"  export {item.export} (tag {item.tag!r}, on_leave {item.on_leave})")
        copies = f"; {item.rows} rows carry it, the first is used" if item.rows > 1 else ""
        member = f"member, row {item.position}{copies}" if item.in_segment else "not a member"
        lines.append(f"    segment: {member}")
        mapped = item.mapped
        if mapped is not None and mapped.valid:
            shown = {**mapped.fields, **mapped.custom_properties}
            lines.append(
                "    mapping: " + (", ".join(f"{k}={v!r}" for k, v in shown.items()) or "no fields")
            )
            if mapped.consent is not None:
                lines.append(
                    f"    consent: {mapped.consent['status']} at {mapped.consent['changed_at']}"
                    " (sent only to a contact new to this export)"
                )
        elif mapped is not None:
            lines.append("    mapping: invalid: " + "; ".join(mapped.reasons))
        if mapped is not None and mapped.warnings:
            lines.append("    warnings: " + "; ".join(mapped.warnings))
        delivered = item.delivered
        if delivered is None:
            lines.append("    delivered: never")
        else:
            state = (
                "marked for re-sending (drift --repair)"
                if delivered.marked_for_resend
                else "as the source says now"
                if delivered.current
                else "differs from the source now"
            )
            run = f", run {delivered.run_id}" if delivered.run_id is not None else ""
            tag = repr(delivered.tag) if delivered.tag else "none"
            lines.append(f"    delivered: {state}; at {delivered.updated_at}{run}; tag {tag}")
        for pending in item.pending:
            what = "batch in flight" if pending.kind == "batch" else "intent left by a killed run"
            lines.append(
                f"    pending: {what} {pending.batch_id} since {pending.created_at}"
                " (the next run settles it first)"
            )
        lines.append(f"    next run: {', '.join(item.next_run)} ({item.note})")
    return "\n".join(lines) + "\n"
