"""``omnisync validate [PATH]``: is this config good enough to run?

Exit status 0 when it is, 1 when it is not (every problem is listed, sorted
by place), 2 for a usage error or a path that does not exist or cannot be
read. ``--format github`` prints GitHub Actions annotations; ``json`` one
JSON document. Secrets are resolved only with ``--check-secrets``, and the
files the config names (sources, ``{file: …}`` secrets) are checked only with
``--check-references``, since CI has neither.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from omnisync.cli.common import write
from omnisync.cli.main import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from omnisync.config.diagnostics import (
    Diagnostic,
    render_github,
    render_json,
    render_text,
    sort_diagnostics,
    summarize,
)
from omnisync.config.loader import try_load_config
from omnisync.config.location import add_config_argument, config_path_from
from omnisync.config.references import check_references
from omnisync.config.secrets import check_secrets


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "validate",
        help="check a config: YAML, schema and rules",
        description=(
            "Check a config file or directory and list every problem as file:line:col."
            " Exit status: 0 valid, 1 invalid, 2 usage error or unreadable path."
        ),
    )
    parser.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="config file or directory (same as --config)",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="text (default), json, or github (GitHub Actions annotations)",
    )
    parser.add_argument(
        "--check-secrets",
        action="store_true",
        help="also resolve every secret reference (values are never printed)",
    )
    parser.add_argument(
        "--check-references",
        action="store_true",
        help="also check that the files the config names (sources, {file: ...} secrets)"
        " exist and are readable",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        return _validate(args)
    except Exception as error:
        # The promise is: never a traceback for bad input. Only the type is shown,
        # since an unforeseen error's text might quote config values.
        write(
            f"omnisync validate: internal error ({type(error).__name__}); please report it\n",
            sys.stderr,
        )
        return EXIT_USAGE


def _validate(args: argparse.Namespace) -> int:
    if args.path and args.config and args.path != args.config:
        write("omnisync validate: give the config path once, as PATH or as --config\n", sys.stderr)
        return EXIT_USAGE
    path = args.path or config_path_from(args, os.environ)
    result = try_load_config(path, environ=os.environ)
    diagnostics: tuple[Diagnostic, ...] = result.diagnostics
    if result.config is not None and args.check_secrets:
        diagnostics = check_secrets(result.config, environ=os.environ)
    if result.config is not None and args.check_references:
        diagnostics = sort_diagnostics((*diagnostics, *check_references(result.config)))
    valid = result.config is not None and not diagnostics
    exports = len(result.config.exports) if result.config is not None else 0
    revision = result.config.revision if result.config is not None else ""

    if args.format == "json":
        write(
            render_json(
                diagnostics, valid=valid, files=result.files, revision=revision, exports=exports
            )
        )
    elif args.format == "github":
        write(render_github(diagnostics))
    else:
        write(render_text(diagnostics))
    if valid:
        if args.format != "json":
            checked = ", secrets resolved" if args.check_secrets else ""
            checked += ", referenced files readable" if args.check_references else ""
            plural = "" if exports == 1 else "s"
            write(f"config OK: {exports} export{plural}, revision {revision}{checked}\n")
        return EXIT_OK
    write(summarize(diagnostics) + "\n", sys.stderr)
    return EXIT_USAGE if result.unreadable else EXIT_FAILED
