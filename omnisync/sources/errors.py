"""The one error a segment source raises."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omnisync.errors import OmnisyncError


class SourceError(OmnisyncError):
    """A segment could not be read; nothing has been sent.

    ``segment`` and ``source`` name the config entries; ``cause`` says what is
    wrong in words a config author can act on (a missing file, table or
    column, a bad query, an undecodable line, a malformed JSON line with its
    number). The message never holds row values, so no personal data leaks
    into logs.
    """

    def __init__(self, cause: str, *, segment: str, source: str) -> None:
        super().__init__(f"segment '{segment}' (source '{source}'): {cause}")
        self.cause = cause
        self.segment = segment
        self.source = source


@contextmanager
def opening_errors(path: Path, *, segment: str, source: str) -> Iterator[None]:
    """Turn a failure to open the segment file ``path`` into a :class:`SourceError`
    saying why: not found, a directory, or the system's reason."""
    try:
        yield
    except FileNotFoundError:
        cause = f"file not found: {path}"
    except IsADirectoryError:
        cause = f"path is a directory, not a file: {path}"
    except OSError as error:
        cause = f"cannot open {path}: {error.strerror}"
    else:
        return
    raise SourceError(cause, segment=segment, source=source) from None
