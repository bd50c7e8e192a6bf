"""omnisync validate [PATH]: check a config file or directory (YAML, schema, rules).

Lists every problem as file:line:col, sorted by place (--format github: GitHub
Actions annotations; json: one document). Secrets are resolved only with
--check-secrets and the files the config names checked only with
--check-references, since CI has neither.

Exit status: 0 valid, 1 invalid, 2 usage error or unreadable path.
"""

from __future__ import annotations

import argparse
import os
import sys

from omnisync.cli.common import add_format, write
from omnisync.cli.main import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from omnisync.config.location import add_config_argument, config_path_from


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="config file or directory (same as --config)",
    )
    add_config_argument(parser)
    add_format(parser, "github")
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
    # Imported here, not with the module: `omnisync --help` imports every command's module.
    from omnisync.config.diagnostics import (
        render_github,
        render_json,
        render_text,
        sort_diagnostics,
        summarize,
    )
    from omnisync.config.loader import try_load_config
    from omnisync.config.secrets import check_references, check_secrets

    if args.path and args.config and args.path != args.config:
        write("omnisync validate: give the config path once, as PATH or as --config\n", sys.stderr)
        return EXIT_USAGE
    result = try_load_config(args.path or config_path_from(args, os.environ), environ=os.environ)
    config, diagnostics = result.config, result.diagnostics
    exports, revision = 0, ""
    if config is not None:
        exports, revision = len(config.exports), config.revision
        if args.check_secrets:
            diagnostics = sort_diagnostics(check_secrets(config, environ=os.environ))
        if args.check_references:
            diagnostics = sort_diagnostics((*diagnostics, *check_references(config)))
    valid = config is not None and not diagnostics
    if args.format == "json":
        write(
            render_json(
                diagnostics, valid=valid, files=result.files, revision=revision, exports=exports
            )
        )
    else:
        write(render_github(diagnostics) if args.format == "github" else render_text(diagnostics))
    if valid:
        if args.format != "json":
            checked = ", secrets resolved" if args.check_secrets else ""
            checked += ", referenced files readable" if args.check_references else ""
            plural = "" if exports == 1 else "s"
            write(f"config OK: {exports} export{plural}, revision {revision}{checked}\n")
        return EXIT_OK
    write(summarize(diagnostics) + "\n", sys.stderr)
    return EXIT_USAGE if result.unreadable else EXIT_FAILED
