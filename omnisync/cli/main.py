"""Entry point of the ``omnisync`` command.

Each command lives in its own module exposing ``register(subparsers)``, which
adds a sub-parser whose ``handler`` default is ``handler(args) -> int``.
Exit codes: 0 success, 1 the thing checked or run failed, 2 usage or an
unreadable path, 3 a run that partly succeeded (see the README).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from omnisync import __version__

#: Command modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "omnisync.cli.validate",
    "omnisync.cli.schema",
    "omnisync.cli.emulator",
    "omnisync.cli.daemon",
    "omnisync.cli.status",
    "omnisync.cli.plan",
    "omnisync.cli.diff",
    "omnisync.cli.export",
    "omnisync.cli.drift",
    "omnisync.cli.explain",
    "omnisync.cli.history",
    "omnisync.cli.demo",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnisync",
        description="Keep Omnisend contacts in step with customer segments, driven by YAML.",
    )
    parser.add_argument("--version", action="version", version=f"omnisync {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
