"""Checking that a segment offers the columns an export reads."""

from __future__ import annotations

from collections.abc import Sequence

from omnisync.sources.errors import SourceError


def require_columns(
    available: Sequence[str],
    wanted: Sequence[str],
    *,
    case_sensitive: bool,
    segment: str,
    source: str,
) -> None:
    """Raise :class:`SourceError` naming every ``wanted`` column not in ``available``."""
    if case_sensitive:
        present = set(available)
        missing = [column for column in wanted if column not in present]
    else:
        folded = {column.casefold() for column in available}
        missing = [column for column in wanted if column.casefold() not in folded]
    if missing:
        names = ", ".join(f"'{column}'" for column in missing)
        offered = ", ".join(available) if available else "none"
        noun = "column" if len(missing) == 1 else "columns"
        raise SourceError(
            f"missing {noun} {names} (the segment has: {offered})",
            segment=segment,
            source=source,
        )
