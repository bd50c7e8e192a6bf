"""``omnisync emulator``: run the local Omnisend emulator as its own process.

Prints ``emulator listening on http://HOST:PORT/api`` (flushed) once it
accepts requests, serves until SIGTERM or SIGINT, then exits 0. It is a test
tool, so it refuses a non-loopback ``--host`` unless ``--allow-remote``.
API keys never appear in its output.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading
from types import FrameType
from typing import Any

from omnisync.cli.main import EXIT_OK, EXIT_USAGE

#: What the command's first line says before the API root's URL.
LISTENING = "emulator listening on "


def announced_base_url(line: str) -> str | None:
    """The API root that the command's first output ``line`` announces; ``None`` if it is
    not that line (the emulator did not start)."""
    if not line.startswith(LISTENING):
        return None
    return line.removeprefix(LISTENING).strip()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="run a local Omnisend emulator (for tests, the demo and benchmarks)",
        description=(
            "Run a faithful local Omnisend (API version 2026-03-15) on loopback. "
            "Inspect it under http://HOST:PORT/_emulator/."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        required=True,
        metavar="KEY",
        help="an accepted API key; repeat for more brands (each key is its own brand)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        metavar="X",
        help="run modelled time X times faster than real time (60: a minute per second)",
    )
    parser.add_argument("--no-rate-limits", action="store_true", help="disable rate limiting")
    parser.add_argument(
        "--batch-delay",
        type=float,
        default=0.2,
        metavar="S",
        help="modelled seconds from a batch's creation to its end (default 0.2)",
    )
    parser.add_argument(
        "--requests-per-minute", type=int, default=400, metavar="N", help="overall limit per brand"
    )
    parser.add_argument(
        "--tags-per-minute", type=int, default=60, metavar="N", help="tags endpoint limit per brand"
    )
    parser.add_argument(
        "--request-log-limit",
        type=int,
        default=None,
        metavar="N",
        help="keep only the newest N request records (default: all)",
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (test tool!)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from omnisync.emulator import Emulator

    # A million stored contacts make every full garbage collection walk a
    # million objects; collecting less often keeps the emulator fast. The
    # youngest generation too: parsed batch bodies live until their batch is
    # applied, and a collection that comes later finds most of them gone
    # (a million-contact benchmark: 0.78 s collecting at 50,000, 0.45 s at
    # 200,000). This process is the emulator's own: nothing else is touched.
    gc.set_threshold(200_000, 20, 100)
    problems = _argument_problems(args)
    if problems:
        for problem in problems:
            print(f"omnisync emulator: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        emulator = Emulator(
            tuple(args.api_keys),
            time_scale=args.time_scale,
            rate_limits=not args.no_rate_limits,
            requests_per_minute=args.requests_per_minute,
            tags_per_minute=args.tags_per_minute,
            batch_delay=args.batch_delay,
            host=args.host,
            port=args.port,
            allow_remote=args.allow_remote,
            request_log_limit=args.request_log_limit,
        )
        emulator.start()
    except OSError as error:
        print(
            f"omnisync emulator: cannot listen on {args.host}:{args.port}: {error.strerror}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except ValueError as error:
        print(f"omnisync emulator: {error}", file=sys.stderr)
        return EXIT_USAGE
    # What start-up made (modules, the emulator's own objects) lives as long as
    # the process: out of the collector's sight, a collection never walks it again.
    gc.freeze()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        print(f"{LISTENING}{emulator.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("emulator stopped", flush=True)
    return EXIT_OK


def _argument_problems(args: argparse.Namespace) -> list[str]:
    from omnisync.emulator.handler import is_loopback_host

    problems = []
    if not 0 <= args.port <= 65535:
        problems.append(f"--port must be between 0 and 65535, got {args.port}")
    if any(not key.strip() for key in args.api_keys):
        problems.append("--api-key must not be empty")
    if args.time_scale is not None and not args.time_scale > 0:
        problems.append("--time-scale must be a positive number")
    if args.batch_delay < 0:
        problems.append("--batch-delay must not be negative")
    if args.request_log_limit is not None and args.request_log_limit < 0:
        problems.append("--request-log-limit must not be negative")
    if not args.allow_remote and not is_loopback_host(args.host):
        problems.append(
            f"refusing to listen on non-loopback host {args.host!r}: the emulator is a test "
            "tool; pass --allow-remote if you really mean it"
        )
    return problems
