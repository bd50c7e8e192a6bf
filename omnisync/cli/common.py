"""What the commands share: loading the config, refusing unknown exports, a counting
option's type and writing output that a closed pipe or a narrow locale cannot break."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TextIO

from omnisync.cli.main import EXIT_FAILED, EXIT_USAGE, reader_gone
from omnisync.config.diagnostics import render_text, summarize
from omnisync.config.loader import try_load_config
from omnisync.config.location import config_path_from
from omnisync.config.model import Config


def cli_config(args: argparse.Namespace) -> Config | int:
    """Load the config ``args`` name (``--config``): the Config, or the exit status after
    printing why not."""
    result = try_load_config(config_path_from(args, os.environ), environ=os.environ)
    if result.config is None:
        sys.stderr.write(render_text(result.diagnostics))
        print(summarize(result.diagnostics), file=sys.stderr)
        return EXIT_USAGE if result.unreadable else EXIT_FAILED
    return result.config


def config_with_export(args: argparse.Namespace, *, command: str) -> Config | int:
    """:func:`cli_config`, also refusing (exit 2, naming the exports) an unknown
    ``args.export``."""
    loaded = cli_config(args)
    if isinstance(loaded, int):
        return loaded
    refused = refuse_unknown_exports(loaded, [args.export], command=command)
    return loaded if refused is None else refused


def chosen_exports(config: Config, names: list[str], *, command: str) -> list[str] | int:
    """The exports ``names`` asks for, once each in order (every export of ``config``
    when empty), or exit 2 from :func:`refuse_unknown_exports`."""
    chosen = list(dict.fromkeys(names)) or list(config.exports)
    refused = refuse_unknown_exports(config, chosen, command=command)
    return chosen if refused is None else refused


def refuse_unknown_exports(config: Config, names: list[str], *, command: str) -> int | None:
    """Exit 2 after naming the exports of ``names`` not in ``config`` (and those that
    are), or ``None`` when every one is there."""
    unknown = [name for name in names if name not in config.exports]
    if not unknown:
        return None
    known = ", ".join(sorted(config.exports)) or "none"
    listed = ", ".join(f"'{name}'" for name in unknown)
    print(
        f"omnisync {command}: no export {listed} in the config (exports: {known})", file=sys.stderr
    )
    return EXIT_USAGE


def positive(text: str) -> int:
    """An option's value as a whole number of at least 1 (argparse's ``type``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


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
