"""``omnisync diff``: what a config change does in Omnisend, before it is merged.

``--base REV`` compares the config at a git revision of the repository
holding ``--config`` with the working tree; ``--head REV`` replaces the
working tree by another revision; ``--base-config PATH`` compares two paths
without git. Both sides are validated first. Member counts, and so the cost
of a change, come from the state store when it is there: the SQLite store
under ``--state-dir``, else the head config's ``daemon.state`` (SQLite under
``daemon.state_dir``, or a shared PostgreSQL database, its DSN resolved from
the environment or ``$CREDENTIALS_DIRECTORY``). Without a usable store the
diff says that counts are unknown and why (a PostgreSQL store is named, never
its DSN or password); it is not an error.

Exit status: 0 compared (with ``--exit-code``: 0 no changes, 3 changes);
1 a side is invalid, or ``--fail-on`` found an effect at that risk or
above; 2 usage errors, an unreadable path or an unknown revision.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from contextlib import ExitStack
from typing import Any

from omnisync.cli.common import write
from omnisync.cli.main import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from omnisync.config.diagnostics import render_github, render_text, summarize
from omnisync.config.loader import try_load_config
from omnisync.config.location import add_config_argument, config_path_from
from omnisync.config.model import Config, DaemonSettings
from omnisync.errors import OmnisyncError
from omnisync.review.compare import Relocate, same
from omnisync.review.members import ledger_members
from omnisync.review.model import Review
from omnisync.review.render_machine import render_github as render_review_github
from omnisync.review.render_machine import render_json
from omnisync.review.render_markdown import render_markdown
from omnisync.review.render_text import render_text as render_review_text
from omnisync.review.review import review_configs
from omnisync.review.revisions import RevisionUnavailable, checkout

EXIT_CHANGES = 3

FORMATS = ("text", "markdown", "json", "github")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "diff",
        help="show what a config change does in Omnisend (effects, cost, approvers)",
        description=(
            "Compare two configs and show every object added, removed or changed, what each"
            " change does in Omnisend (re-sends, re-tags, brand moves, permissions), what it"
            " costs under the brand's rate limits and who must approve it."
            " Exit status: 0 compared (--exit-code: 0 no changes, 3 changes),"
            " 1 invalid config or --fail-on matched, 2 usage error."
        ),
    )
    add_config_argument(parser)
    parser.add_argument("--base", metavar="REV", help="compare the config at git revision REV")
    parser.add_argument(
        "--head", metavar="REV", help="with --base: the other side at REV, not the working tree"
    )
    parser.add_argument(
        "--base-config", metavar="PATH", help="compare the config at PATH (no git needed)"
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="SQLite state directory for member counts (default: the config's daemon.state)",
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="text (default)")
    parser.add_argument(
        "--exit-code", action="store_true", help="exit 3 when there are changes, 0 when none"
    )
    parser.add_argument(
        "--fail-on",
        choices=("danger", "warning"),
        help="exit 1 when an effect at this risk or above is present",
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the text format (auto: when writing to a terminal, unless NO_COLOR)",
    )
    parser.set_defaults(handler=handle)


class _Invalid(OmnisyncError):
    """A side did not load: already reported; ``status`` is the exit status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def handle(args: argparse.Namespace) -> int:
    if (args.base is None) == (args.base_config is None):
        return _usage("give exactly one of --base REV and --base-config PATH")
    if args.head is not None and args.base is None:
        return _usage("--head REV needs --base REV")
    config_path = config_path_from(args, os.environ)
    try:
        with ExitStack() as stack:
            base, relocate_base = _side(
                args.base_config or config_path, args.base, side="base", args=args, stack=stack
            )
            head, relocate_head = _side(config_path, args.head, side="head", args=args, stack=stack)
            review = _review(args, base, head, (relocate_base, relocate_head))
    except RevisionUnavailable as error:
        print(f"omnisync diff: {error}", file=sys.stderr)
        return EXIT_USAGE
    except _Invalid as invalid:
        return invalid.status
    write(_render(args, review))
    if args.fail_on and review.at_or_above(args.fail_on):
        found = ", ".join(sorted({e.code for e in review.at_or_above(args.fail_on)}))
        print(f"omnisync diff: effects at {args.fail_on} or above: {found}", file=sys.stderr)
        return EXIT_FAILED
    if args.exit_code and review.changes:
        return EXIT_CHANGES
    return EXIT_OK


def _side(
    path: str, revision: str | None, *, side: str, args: argparse.Namespace, stack: ExitStack
) -> tuple[Config, Relocate]:
    """The config at ``path``, or at git ``revision`` of its repository, and how to map
    the paths it names back to the working tree."""
    if revision is None:
        return _load(path, side=side, args=args), same
    checked_out = stack.enter_context(checkout(path, revision))
    config = _load(checked_out.path, side=side, args=args, relocate=checked_out.relocate)
    return dataclasses.replace(config, revision=checked_out.label), checked_out.relocate


def _review(
    args: argparse.Namespace, base: Config, head: Config, relocations: tuple[Relocate, Relocate]
) -> Review:
    exports = sorted(set(base.exports) | set(head.exports))
    settings = DaemonSettings(state_dir=args.state_dir) if args.state_dir else head.daemon
    members = ledger_members(settings, exports, environ=os.environ)
    return review_configs(
        base,
        head,
        members=members,
        relocate_base=relocations[0],
        relocate_head=relocations[1],
    )


def _load(path: str, *, side: str, args: argparse.Namespace, relocate: Relocate = same) -> Config:
    result = try_load_config(path, environ=os.environ)
    if result.config is not None:
        return result.config
    diagnostics = [
        dataclasses.replace(diagnostic, file=relocate(diagnostic.file))
        for diagnostic in result.diagnostics
    ]
    if args.format == "github":
        write(render_github(diagnostics))
    sys.stderr.write(render_text(diagnostics))
    print(f"omnisync diff: the {side} config is invalid: {summarize(diagnostics)}", file=sys.stderr)
    raise _Invalid(EXIT_USAGE if result.unreadable else EXIT_FAILED)


def _render(args: argparse.Namespace, review: Review) -> str:
    if args.format == "json":
        return render_json(review)
    if args.format == "markdown":
        return render_markdown(review)
    if args.format == "github":
        return render_review_github(review, root=os.getcwd())
    return render_review_text(review, color=_color(args.color))


def _color(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _usage(message: str) -> int:
    print(f"omnisync diff: {message}", file=sys.stderr)
    return EXIT_USAGE
