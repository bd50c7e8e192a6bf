"""CSV and JSON Lines segment sources: whole files, streamed row by row.

CSV: a header line, then every value a string; a row shorter than the header
gives ``None`` for the missing fields, extra fields are ignored, blank lines
skipped, a UTF-8 byte order mark dropped. JSONL: one JSON object per UTF-8
line, blank lines skipped, values as a database column holds them
(:func:`storable`), an absent key ``None``. A file that cannot be opened, bad
quoting, an undecodable byte, a line that is not a JSON object or a value that is
not Unicode text (an escaped lone surrogate) is a :class:`SourceError` naming the
line where it can be told.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import IO, Any

from omnisync.regularfiles import NotRegularFile, open_regular_file
from omnisync.sources.errors import SourceError, require_columns

_JSON_KINDS = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
}


#: The largest CSV field read, in characters (the csv module's default is 128 KiB).
CSV_FIELD_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True)
class _FileReader:
    path: Path
    _: KW_ONLY
    segment: str
    source: str

    def _error(self, cause: str) -> SourceError:
        return SourceError(cause, segment=self.segment, source=self.source)

    def _open(self, mode: str, **options: Any) -> IO[Any]:
        try:
            return os.fdopen(open_regular_file(self.path), mode, **options)
        except FileNotFoundError:
            cause = f"file not found: {self.path}"
        except IsADirectoryError:
            cause = f"path is a directory, not a file: {self.path}"
        except NotRegularFile:
            cause = f"path is not a regular file: {self.path}"
        except OSError as error:
            cause = f"cannot open {self.path}: {error.strerror}"
        raise self._error(cause) from None

    def _require_unchanged(self, handle: IO[Any], opened: os.stat_result) -> None:
        # A writer still at work (appending, or rewriting in place) leaves a last line
        # half written that reads as a valid row: an address cut short is a real contact.
        now = os.fstat(handle.fileno())
        if (now.st_size, now.st_mtime_ns) != (opened.st_size, opened.st_mtime_ns):
            raise self._error(
                f"{self.path} changed while it was read: write it elsewhere and rename it"
                " into place, so that a reader sees it whole"
            )


@dataclass(frozen=True)
class CsvReader(_FileReader):
    """Streams the rows of one CSV file as tuples of the requested columns."""

    _: KW_ONLY
    encoding: str = "utf-8"
    delimiter: str = ","

    def rows(self, columns: Sequence[str]) -> Iterator[tuple[object, ...]]:
        """Yield, per data row, the values of ``columns`` in that order."""
        try:
            codec = codecs.lookup(self.encoding)
        except LookupError:
            raise self._error(f"unknown encoding '{self.encoding}' in the csv options") from None
        encoding = codec.name
        try:
            opened = self._open("r", encoding=encoding, errors="strict", newline="")
        except LookupError:
            # A codec that is not a text encoding (base64, zlib): validation refuses it,
            # but a config built by hand skips validation.
            raise self._error(
                f"encoding '{self.encoding}' in the csv options is not a text encoding;"
                " set the source's csv.encoding"
            ) from None
        with opened as handle:
            at_open = os.fstat(handle.fileno())
            records = self._records(handle, encoding)
            names = next(records, [])
            header = tuple(name.strip() for name in names)
            if not header:
                raise self._error(f"the file is empty: no header line in {self.path}")
            require_columns(
                header, columns, case_sensitive=True, segment=self.segment, source=self.source
            )
            positions = [header.index(column) for column in columns]
            for record in records:
                width = len(record)
                yield tuple(
                    record[position] if position < width else None for position in positions
                )
            self._require_unchanged(handle, at_open)

    def _records(self, handle: Iterable[str], encoding: str) -> Iterator[list[str]]:
        # The csv module refuses fields over 128 KiB by default, a valid file's included
        # (a long note in a column nobody maps); but a stray quote must not read the rest
        # of a large file into memory as one field.
        csv.field_size_limit(CSV_FIELD_LIMIT)
        reader = csv.reader(_without_byte_order_mark(handle), delimiter=self.delimiter, strict=True)
        try:
            yield from filter(None, reader)  # blank lines are empty records
        except UnicodeError as error:
            # The text layer decodes ahead in blocks, so the reader's line
            # number is not where the bad byte is; find it in the bytes. Some codecs
            # refuse the whole stream with a plain UnicodeError ("UTF-16 stream does not
            # start with BOM"), which has neither a position nor a reason.
            line = _line_of_decode_error(self.path, encoding)
            where = f"line {line}: " if line is not None else ""
            reason = error.reason if isinstance(error, UnicodeDecodeError) else str(error)
            raise self._error(
                f"{where}cannot decode as {self.encoding} ({reason}); set the source's csv.encoding"
            ) from None
        except csv.Error as error:
            raise self._error(f"line {reader.line_num}: malformed CSV: {error}") from None


def _without_byte_order_mark(lines: Iterable[str]) -> Iterator[str]:
    # A spreadsheet's file often starts with a byte order mark (UTF-8, or the UTF-16LE of
    # Excel's "Unicode text"). It goes before the csv module reads the header: a quoted
    # first name after it is not a quoted field to the csv module ('\ufeff"email"').
    lines = iter(lines)
    first = next(lines, None)
    if first is not None:
        yield first.removeprefix("\ufeff")
        yield from lines


def _line_of_decode_error(path: Path, encoding: str) -> int | None:
    """The 1-based line holding the first byte ``encoding`` cannot decode; ``None`` when
    there is none or it cannot be told (a codec that refuses the whole stream)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    line = 1
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 16):
                try:
                    line += decoder.decode(chunk).count("\n")
                except UnicodeDecodeError as error:
                    # ``error.object`` is what the decoder held: pending bytes and this chunk.
                    valid = error.object[: error.start]
                    return line + codecs.decode(valid, encoding, errors="replace").count("\n")
    except (OSError, UnicodeError):
        # A plain UnicodeError has no position (UTF-16 without a byte order mark), and a
        # codec may refuse even the valid bytes again on their own.
        return None
    return None


def storable(value: object) -> object:
    """A JSON value as a scalar a SQLite column and a fingerprint accept: ``true``/``false``
    as text, arrays and objects as compact JSON, integers beyond 64 bits as their digits."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return str(value)
    return value


@dataclass(frozen=True)
class JsonlReader(_FileReader):
    """Streams the objects of one JSONL file as tuples of the requested keys."""

    def rows(self, columns: Sequence[str]) -> Iterator[tuple[object, ...]]:
        """Yield, per object, the values of ``columns`` (``None`` when a key is absent)."""
        with self._open("rb") as handle:
            at_open = os.fstat(handle.fileno())
            for number, raw in enumerate(handle, start=1):
                line = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
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
                        f"line {number}: expected a JSON object, got {_JSON_KINDS[type(document)]}"
                    )
                row = tuple(storable(document.get(column)) for column in columns)
                # The line was UTF-8, so only a \u escape can make a lone surrogate, which
                # json accepts but is not text: nothing downstream could store it.
                if "\\u" in text:
                    self._require_text(row, columns, number)
                yield row
            self._require_unchanged(handle, at_open)

    def _require_text(self, row: Sequence[object], columns: Sequence[str], number: int) -> None:
        """Raise :class:`SourceError` if a value of ``row`` cannot be encoded as UTF-8."""
        for column, value in zip(columns, row, strict=True):
            if not isinstance(value, str):
                continue
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                surrogate = f"\\u{ord(value[error.start]):04x}"
                raise self._error(
                    f"line {number}: the value of '{column}' is not Unicode text"
                    f" (a lone surrogate {surrogate} from a \\u escape)"
                ) from None
