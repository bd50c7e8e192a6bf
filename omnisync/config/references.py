"""``validate --check-references``: the files a config names exist and can be read.

The files are the sources' ``path`` (SQLite databases, CSV and JSONL files)
and the secrets written as ``{file: PATH}`` (their contents are never read,
only opened). Each problem is a :class:`~omnisync.config.diagnostics.Diagnostic`
at the place the path is written, as ``promtool check config`` reports the
files a Prometheus config names. Off by default: CI rarely has them.
"""

from __future__ import annotations

import os
import stat

from omnisync.config.diagnostics import Diagnostic
from omnisync.config.model import Config
from omnisync.config.secrets import secret_references


def check_references(config: Config) -> tuple[Diagnostic, ...]:
    """A diagnostic for each file ``config`` names that is missing or unreadable."""
    files = [
        (f"sources.{name}.path", source.path, f"{source.kind} source")
        for name, source in config.sources.items()
        if source.path is not None
    ]
    for dotted, reference in secret_references(config):
        if reference.kind == "file":
            files.append((dotted, reference.name, "secret file"))
    diagnostics = []
    for dotted, path, what in files:
        problem = file_problem(path)
        if problem is not None:
            position = config.position_or_start(dotted)
            diagnostics.append(Diagnostic.at(position, dotted, f"{what} {path}: {problem}"))
    return tuple(sorted(diagnostics))


def file_problem(path: str) -> str | None:
    """Why ``path`` cannot be read as a file, or ``None`` when it can."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as error:
        return f"cannot be reached: {(error.strerror or str(error)).lower()}"
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    try:
        # Non-blocking: a FIFO at that path must not hang validation. Nothing is read.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        return f"cannot be read: {(error.strerror or str(error)).lower()}"
    os.close(descriptor)
    return None
