"""omnisync emulator: run a faithful local Omnisend (API version 2026-03-15).

Prints "emulator listening on http://HOST:PORT/api" (flushed) once it accepts
requests, serves until SIGTERM or SIGINT, then exits 0. Inspect it under
http://HOST:PORT/_emulator/. A test tool: it refuses a non-loopback --host
unless --allow-remote. API keys never appear in its output.
"""

from __future__ import annotations

import argparse
import gc
import threading

from omnisync.cli.common import bounded, fail, stop_on_signals
from omnisync.cli.main import EXIT_OK, EXIT_USAGE

LISTENING = "emulator listening on "


def announced_base_url(line: str) -> str | None:
    """The API root that the command's first output ``line`` announces; ``None`` if it is
    not that line (the emulator did not start)."""
    return line.removeprefix(LISTENING).strip() if line.startswith(LISTENING) else None


def _api_key(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=bounded(int, 0, 65535), default=0, help="port (default: any free port)"
    )
    parser.add_argument(
        "--api-key",
        dest="api_keys",
        type=_api_key,
        action="append",
        required=True,
        metavar="KEY",
        help="an accepted API key; repeat for more brands (each key is its own brand)",
    )
    parser.add_argument(
        "--time-scale",
        type=bounded(float, 0, above=True),
        metavar="X",
        help="run modelled time X times faster than real time (60: a minute per second)",
    )
    parser.add_argument("--no-rate-limits", action="store_true", help="disable rate limiting")
    parser.add_argument(
        "--batch-delay",
        type=bounded(float, 0),
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
        type=bounded(int, 0),
        metavar="N",
        help="keep only the newest N request records (default: all)",
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (test tool!)"
    )


def handle(args: argparse.Namespace) -> int:
    from omnisync.emulator import Emulator

    # Stored contacts make every full collection walk them all, and parsed batch bodies
    # mostly die young: collecting less often keeps the emulator fast.
    gc.set_threshold(200_000, 20, 100)
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
        where = f"{args.host}:{args.port}"
        return fail(f"omnisync emulator: cannot listen on {where}: {error.strerror}", EXIT_USAGE)
    except ValueError as error:
        # A non-loopback host without --allow-remote, among others.
        return fail(f"omnisync emulator: {error}", EXIT_USAGE)
    # What start-up made lives as long as the process: out of the collector's sight.
    gc.freeze()
    stop = threading.Event()
    with stop_on_signals(stop):
        try:
            print(f"{LISTENING}{emulator.base_url}", flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            emulator.stop()
    print("emulator stopped", flush=True)
    return EXIT_OK
