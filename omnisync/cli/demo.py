"""``omnisync demo``: the main job, end to end, on embedded defaults and a local Omnisend.

No Omnisend account and no config needed. In a demo directory (default
``./demo-data``, the path ``config.example.yaml`` names) it seeds a sample
customer database, starts the Omnisend emulator on a free loopback port,
seeds two contacts Omnisend "already had", runs the example's exports
(plan, then run), changes some profiles, shows the incremental plan, runs
again, and prints what happened in Omnisend.

Re-runnable: every run starts fresh, removing only the files an earlier demo
created in that directory (``cdp.sqlite``, ``config.yaml``, ``state/``).
Exit status 0 when every promise held (no welcome message, the unsubscribed
customer still unsubscribed, everybody's own tags intact), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from omnisync.cli.main import EXIT_FAILED, EXIT_USAGE

#: What the demo's emulator "already had": a colleague's tags, and an unsubscribe.
OWN_TAGS = ("wholesale", "newsletter-2019")
UNSUBSCRIBED_AT = "2026-01-15T09:30:00Z"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run the example exports against a local Omnisend emulator (no account needed)",
        description=(
            "Seed a sample customer database, start a local Omnisend emulator, run the"
            " example config's exports, change some profiles and run again, printing"
            " each plan and what happened. Starts fresh every time."
        ),
    )
    parser.add_argument(
        "--dir",
        default="demo-data",
        metavar="PATH",
        help="the demo directory (default ./demo-data; earlier demo files there are replaced)",
    )
    parser.add_argument(
        "--profiles",
        type=int,
        default=3000,
        metavar="N",
        help="sample profiles to generate (default 3000)",
    )
    parser.add_argument("--seed", type=int, default=2026, help=argparse.SUPPRESS)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not 100 <= args.profiles <= 200_000:
        print("omnisync demo: --profiles must be between 100 and 200000", file=sys.stderr)
        return EXIT_USAGE
    # Imported here: the demo pulls in the emulator, which other commands never need.
    from rich.console import Console

    from omnisync.demo.story import Demo
    from omnisync.demo.world import clear_demo_directory

    # Piped output gets a wide page so the history table keeps its columns.
    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    directory = Path(args.dir).resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        clear_demo_directory(directory)
    except OSError as error:
        print(f"omnisync demo: cannot use {directory}: {error.strerror or error}", file=sys.stderr)
        return EXIT_FAILED
    return int(Demo(console, directory).play(profiles=args.profiles, seed=args.seed))
