"""omnisync demo: the main job, end to end, on a local Omnisend emulator.

No account and no config needed. In --dir it seeds a sample customer database,
starts the emulator, seeds two contacts Omnisend "already had", plans and runs
the example config's exports, changes some profiles, plans and runs again, and
shows what happened. Every demo starts fresh, removing only the files an
earlier one created there (cdp.sqlite, config.yaml, state/).

Exit status: 0 every promise held (no welcome message, the unsubscribed
customer still unsubscribed, everybody's own tags intact), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omnisync.cli.common import bounded, fail
from omnisync.cli.main import EXIT_FAILED, EXIT_OK


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        default="demo-data",
        metavar="PATH",
        help="the demo directory (default ./demo-data; earlier demo files there are replaced)",
    )
    parser.add_argument(
        "--profiles",
        type=bounded(int, 100, 200_000),
        default=3000,
        metavar="N",
        help="sample profiles to generate (default 3000)",
    )


def handle(args: argparse.Namespace) -> int:
    # Imported here: the demo pulls in the emulator, which other commands never need.
    from rich.console import Console

    from omnisync.demo.story import Demo, clear_demo_directory

    # Piped output gets a wide page so the history table keeps its columns.
    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    directory = Path(args.dir).resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        clear_demo_directory(directory)
    except OSError as error:
        return fail(f"omnisync demo: cannot use {directory}: {error.strerror or error}")
    held = Demo(console, directory).play(profiles=args.profiles)
    return EXIT_OK if held else EXIT_FAILED
