"""The one error a segment source raises, and the checks that raise it for every kind."""

from __future__ import annotations

from collections.abc import Sequence

from omnisync.errors import OmnisyncError


class SourceError(OmnisyncError):
    """A segment could not be read; nothing has been sent. ``segment`` and ``source`` name
    the config entries; ``cause`` says what is wrong in words a config author can act on
    (a missing column, a bad query, line 12 is not JSON), never with row values, so no
    personal data leaks into logs."""

    def __init__(self, cause: str, *, segment: str, source: str) -> None:
        super().__init__(f"segment '{segment}' (source '{source}'): {cause}")
        self.cause = cause
        self.segment = segment
        self.source = source


def require_columns(
    available: Sequence[str],
    wanted: Sequence[str],
    *,
    case_sensitive: bool,
    segment: str,
    source: str,
) -> None:
    """Raise :class:`SourceError` naming every ``wanted`` column not in ``available``."""
    fold = (lambda name: name) if case_sensitive else str.casefold
    present = {fold(column) for column in available}
    missing = [column for column in wanted if fold(column) not in present]
    if missing:
        names = ", ".join(f"'{column}'" for column in missing)
        offered = f"the segment has: {', '.join(available) or 'none'}"
        if any("@" in name for name in available):
            # An e-mail address, not a column name: the first row of a file without its
            # header line, taken for one; a customer's data, so never quoted.
            offered = "its header looks like a row of data: does the file have a header line?"
        noun = "column" if len(missing) == 1 else "columns"
        raise SourceError(
            f"missing {noun} {names} ({offered})",
            segment=segment,
            source=source,
        )
