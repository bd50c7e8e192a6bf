"""JSON Lines segment sources: one JSON object per line, streamed.

Blank lines are skipped; any other line must be a JSON object, or
:class:`SourceError` names the line. Values are made storable the way a
database column would hold them: strings, numbers and ``null`` pass through,
``true``/``false`` become the strings ``"true"``/``"false"``, nested arrays and
objects become their compact JSON text. A key absent from a line reads as
``None``. The file must be UTF-8 (a leading byte order mark is allowed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from omnisync.sources.errors import SourceError, opening_errors

_BOM = b"\xef\xbb\xbf"
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def storable(value: object) -> object:
    """A JSON value as a scalar a SQLite column and a fingerprint accept."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        # SQLite integers are 64-bit; a longer number is kept as its digits.
        return str(value)
    return value


def _json_kind(document: object) -> str:
    if document is None:
        return "null"
    if isinstance(document, bool):
        return "a boolean"
    if isinstance(document, int | float):
        return "a number"
    if isinstance(document, str):
        return "a string"
    return "an array"


class JsonlReader:
    """Streams the objects of one JSONL file as tuples of the requested keys."""

    def __init__(self, path: Path, *, segment: str, source: str) -> None:
        self.path = path
        self.segment = segment
        self.source = source

    def _error(self, cause: str) -> SourceError:
        return SourceError(cause, segment=self.segment, source=self.source)

    def rows(self, columns: Sequence[str]) -> Iterator[tuple[object, ...]]:
        """Yield, per object, the values of ``columns`` (``None`` when a key is absent)."""
        with opening_errors(self.path, segment=self.segment, source=self.source):
            handle = self.path.open("rb")
        with handle:
            for number, raw in enumerate(handle, start=1):
                line = raw[len(_BOM) :] if number == 1 and raw.startswith(_BOM) else raw
                if not line.strip():
                    continue
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise self._error(
                        f"line {number}: not UTF-8 ({error.reason} at byte {error.start})"
                    ) from None
                try:
                    document = json.loads(text)
                except json.JSONDecodeError as error:
                    raise self._error(
                        f"line {number}: malformed JSON: {error.msg} at column {error.colno}"
                    ) from None
                except RecursionError:
                    raise self._error(f"line {number}: JSON nested too deeply") from None
                except ValueError as error:
                    # e.g. an integer with more digits than Python converts
                    raise self._error(f"line {number}: unreadable JSON value: {error}") from None
                if not isinstance(document, dict):
                    raise self._error(
                        f"line {number}: expected a JSON object, got {_json_kind(document)}"
                    )
                yield tuple(storable(document.get(column)) for column in columns)
