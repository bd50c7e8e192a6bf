"""Entry point of the ``omnisync`` command.

Each command lives in its own module: its docstring (first line ``omnisync NAME:
summary``) is its help, ``register(parser)`` adds its options and
``handle(args) -> int`` runs it. Exit codes: 0 success, 1 the thing checked or run
failed, 2 usage or an unreadable path, 3 a run that partly succeeded (see the README).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from omnisync import __version__

#: Command name → the module that registers it (``omnisync.cli.NAME``), in the order
#: ``--help`` lists them.
_NAMES = "validate schema emulator daemon status plan diff export drift explain history demo"
COMMANDS: dict[str, str] = {name: f"omnisync.cli.{name}" for name in _NAMES.split()}

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser: every command, or only ``command`` when it names one
    (importing one module, not twelve, halves a command's start-up)."""
    parser = argparse.ArgumentParser(
        prog="omnisync",
        description="Keep Omnisend contacts in step with customer segments, driven by YAML.",
    )
    parser.add_argument("--version", action="version", version=f"omnisync {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [command] if command in COMMANDS else list(COMMANDS)
    for name in names:
        module = importlib.import_module(COMMANDS[name])
        doc = module.__doc__ or ""
        command_parser = subparsers.add_parser(
            name,
            help=doc.split("\n", 1)[0].partition(": ")[2].rstrip("."),
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.register(command_parser)
        command_parser.set_defaults(handler=module.handle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    # Options before the command (--help, --version) want the whole parser.
    command = arguments[0] if arguments and not arguments[0].startswith("-") else None
    parser = build_parser(command)
    args = parser.parse_args(arguments)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(handler(args))
    except SystemExit as ended:  # a command's own refusal, already explained (an int code)
        return int(ended.code or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away from output not written through cli.common.write (rich's
        # tables, schema's bytes). 141 is what a shell reports for a writer ended by SIGPIPE.
        reader_gone()
        return 141


def reader_gone(stream: TextIO | None = None) -> None:
    """Send what ``stream`` (default stdout) still gets to /dev/null: its reader went
    away (``| head``), and the interpreter's flush at exit must not fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), (stream or sys.stdout).fileno())
