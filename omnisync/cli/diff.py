"""omnisync diff: what a config change does in Omnisend, before it is merged.

Compares the config at git revision --base (of the repository holding
--config) with the working tree or revision --head, or --base-config with
--config, after validating both. Shows every object added, removed or changed,
what each change does in Omnisend (re-sends, re-tags, brand moves,
permissions), what it costs under the brand's rate limits and who must
approve it. Member counts come from the state store (--state-dir, else the
head config's, or the base's when the change moves the store: the ledgers are
there); without one the diff says they are unknown and why. A base revision
without the config is an empty config (a first config: everything is added).
--base-config stands for the config at --config: its relative paths are compared
as they resolve from --config's directory.

Exit status: 0 compared (--exit-code: 0 no changes, 3 changes); 1 a side is
invalid or --fail-on matched; 2 usage error, unreadable path, unknown revision.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING

from omnisync.cli.common import fail, write
from omnisync.cli.main import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from omnisync.config.location import add_config_argument, config_path_from

# The review, the config loader and rich are imported by the functions that use them:
# `omnisync --help` imports every command's module.
if TYPE_CHECKING:
    from omnisync.config.model import Config
    from omnisync.review.compare import Relocate
    from omnisync.review.model import Review

EXIT_CHANGES = 3

FORMATS = ("text", "markdown", "json", "github")


def register(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    base = parser.add_mutually_exclusive_group(required=True)
    base.add_argument("--base", metavar="REV", help="compare the config at git revision REV")
    base.add_argument(
        "--base-config", metavar="PATH", help="compare the config at PATH (no git needed)"
    )
    parser.add_argument(
        "--head", metavar="REV", help="with --base: the other side at REV, not the working tree"
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


def handle(args: argparse.Namespace) -> int:
    if args.head is not None and args.base is None:
        return fail("omnisync diff: --head REV needs --base REV", EXIT_USAGE)
    from omnisync.config.model import DaemonSettings
    from omnisync.review.effects import store_move
    from omnisync.review.members import ledger_members
    from omnisync.review.review import review_configs
    from omnisync.review.revisions import RevisionUnavailable, copied

    config_path = config_path_from(args, os.environ)
    try:
        with ExitStack() as stack:
            base, relocate_base = _side(
                args.base_config or config_path, args.base, side="base", args=args, stack=stack
            )
            head, relocate_head = _side(config_path, args.head, side="head", args=args, stack=stack)
            if args.base_config:  # valid: read again where --config is, to compare its paths
                copy = stack.enter_context(copied(args.base_config, beside=config_path))
                base = _side(copy.path, None, side="base", args=args, stack=stack)[0]
                relocate_base = copy.relocate
            exports = sorted(set(base.exports) | set(head.exports))
            if args.state_dir:
                settings = DaemonSettings(state_dir=args.state_dir)
            else:
                # The ledgers stay in the base's store until the head runs: a change that
                # moves the store is costed from there.
                moving = store_move(
                    base, head, relocate_base=relocate_base, relocate_head=relocate_head
                )
                side, relocate = (base, relocate_base) if moving else (head, relocate_head)
                settings = dataclasses.replace(
                    side.daemon, state_dir=relocate(side.daemon.state_dir)
                )
            review = review_configs(
                base,
                head,
                members=ledger_members(settings, exports, environ=os.environ),
                relocate_base=relocate_base,
                relocate_head=relocate_head,
            )
    except RevisionUnavailable as error:
        return fail(f"omnisync diff: {error}", EXIT_USAGE)
    write(_render(args, review))
    failing = review.at_or_above(args.fail_on) if args.fail_on else ()
    if failing:
        found = ", ".join(sorted({effect.code for effect in failing}))
        return fail(f"omnisync diff: effects at {args.fail_on} or above: {found}")
    if args.exit_code and review.changes:
        return EXIT_CHANGES
    return EXIT_OK


def _side(
    path: str, revision: str | None, *, side: str, args: argparse.Namespace, stack: ExitStack
) -> tuple[Config, Relocate]:
    """The config at ``path``, or at git ``revision`` of its repository (:func:`no_config`
    when it holds none), and how to map the paths it names back to the working tree.
    Exits (``SystemExit``) after reporting why it does not load: the head's problems on
    its lines, the base's labelled with the base (they are not the head's lines)."""
    from omnisync.config.diagnostics import render_github, render_text, summarize
    from omnisync.config.loader import try_load_config
    from omnisync.review.compare import same
    from omnisync.review.review import no_config
    from omnisync.review.revisions import checkout

    relocate, label = same, None
    if revision is not None:
        checked_out = stack.enter_context(checkout(path, revision))
        if checked_out.empty:
            return no_config(checked_out.label), same
        path, relocate, label = checked_out.path, checked_out.relocate, checked_out.label
    result = try_load_config(path, environ=os.environ)
    if result.config is None:
        diagnostics = [
            dataclasses.replace(diagnostic, file=relocate(diagnostic.file))
            for diagnostic in result.diagnostics
        ]
        text = render_text(diagnostics)
        if side == "base":
            text = "".join(f"base {label or path}: {line}" for line in text.splitlines(True))
        elif args.format == "github":
            write(render_github(diagnostics))
        sys.stderr.write(text)
        summary = summarize(diagnostics)
        print(f"omnisync diff: the {side} config is invalid: {summary}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE if result.unreadable else EXIT_FAILED)
    if label is None:
        return result.config, relocate
    return dataclasses.replace(result.config, revision=label), relocate


def _render(args: argparse.Namespace, review: Review) -> str:
    from omnisync.review import render

    if args.format == "json":
        return render.render_json(review, root=os.getcwd())
    if args.format == "markdown":
        return render.render_markdown(review)
    if args.format == "github":
        return render.render_github(review, root=os.getcwd())
    terminal = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    return render.render_text(
        review, color=args.color == "always" or (args.color == "auto" and terminal)
    )
