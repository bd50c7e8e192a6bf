"""What the commands share: loading the config and refusing unknown exports (both end
the command with ``SystemExit``), the ``--format`` option, a bounded number option's
type, stopping on signals, and writing output that a closed pipe or a narrow locale
cannot break.

Imports little at module level: every command's module imports this one, and
``omnisync --help`` imports every command's module; loading a config (YAML,
jsonschema, APScheduler) is imported by :func:`cli_config` when a command loads one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from omnisync.cli.main import EXIT_FAILED, EXIT_USAGE, reader_gone
from omnisync.config.location import config_path_from
from omnisync.masking import mask_emails_in

if TYPE_CHECKING:
    from omnisync.config.model import Config


def fail(message: str, status: int = EXIT_FAILED) -> int:
    """Print ``message`` on stderr, e-mail addresses masked; returns ``status``, for the
    command to exit with."""
    print(mask_emails_in(message), file=sys.stderr)
    return status


def cli_config(args: argparse.Namespace) -> Config:
    """Load the config ``args`` name (``--config``), or say why not and exit (1; 2 when
    it cannot be read)."""
    from omnisync.config.diagnostics import render_text, summarize
    from omnisync.config.loader import try_load_config

    result = try_load_config(config_path_from(args, os.environ), environ=os.environ)
    if result.config is None:
        sys.stderr.write(render_text(result.diagnostics))
        print(summarize(result.diagnostics), file=sys.stderr)
        raise SystemExit(EXIT_USAGE if result.unreadable else EXIT_FAILED)
    return result.config


def chosen_exports(config: Config, names: list[str], *, command: str) -> list[str]:
    """The exports ``names`` asks for, once each in order (every export of ``config``
    when empty); exits 2, naming the config's exports, if any is not in ``config``."""
    chosen = list(dict.fromkeys(names)) or list(config.exports)
    unknown = [name for name in chosen if name not in config.exports]
    if unknown:
        known = ", ".join(sorted(config.exports)) or "none"
        listed = ", ".join(f"'{name}'" for name in unknown)
        message = f"omnisync {command}: no export {listed} in the config (exports: {known})"
        raise SystemExit(fail(message, EXIT_USAGE))
    return chosen


def add_format(parser: argparse.ArgumentParser, *more: str) -> None:
    """``--format``: text (the default), json or one of ``more``."""
    formats = ("text", "json", *more)
    parser.add_argument(
        "--format", choices=formats, default="text", help="output format (default: text)"
    )


def bounded(
    cast: type[int] | type[float], low: float, high: float | None = None, *, above: bool = False
) -> Callable[[str], Any]:
    """An argparse ``type``: ``cast`` of the text, at least ``low`` (more than ``low`` when
    ``above``) and at most ``high``."""
    kind = "whole number" if cast is int else "number"

    def convert(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {kind}: {text!r}") from None
        if not (value > low if above else value >= low) or (high is not None and value > high):
            bound = "more than" if above else "at least"
            limit = f"between {low} and {high}" if high is not None else f"{bound} {low}"
            raise argparse.ArgumentTypeError(f"must be {limit}")
        return value

    return convert


@contextmanager
def stop_on_signals(stop: threading.Event, *, notice: str | None = None) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM set ``stop`` and print ``notice`` to stderr;
    a second SIGINT raises :class:`KeyboardInterrupt` (abort). Off the main thread (the
    CLI driven in-process) it installs nothing: only the main thread may."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(number: int, frame: object) -> None:
        if stop.is_set() and number == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        if notice:
            print(notice, file=sys.stderr)

    previous = {
        number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def write(text: str, stream: TextIO | None = None) -> None:
    """Write ``text`` to ``stream`` (default stdout) even if the terminal cannot show every
    character of it (a file name that is not UTF-8, a non-UTF-8 locale): those become
    backslash escapes. A reader that went away (``omnisync validate | head``) has what
    it wanted: the exit status still tells the outcome."""
    stream = sys.stdout if stream is None else stream
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        stream.flush()
    except BrokenPipeError:
        reader_gone(stream)


def write_json(document: object) -> None:
    """``document`` on stdout as indented JSON, non-ASCII characters as they are."""
    write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
