"""CSV segment sources: a file with a header line, streamed row by row.

Encoding and delimiter come from the source's ``csv`` options. A UTF-8 byte
order mark is dropped. Every value is a string; a row shorter than the
header gives ``None`` for the missing fields (distinct from an empty field),
extra fields are ignored and blank lines skipped. Bad quoting, an
undecodable byte or a field over the size limit raise :class:`SourceError`
with the line number.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from omnisync.sources.columns import require_columns
from omnisync.sources.errors import SourceError, opening_errors


class CsvReader:
    """Streams the rows of one CSV file as tuples of the requested columns."""

    def __init__(
        self,
        path: Path,
        *,
        encoding: str = "utf-8",
        delimiter: str = ",",
        segment: str,
        source: str,
    ) -> None:
        self.path = path
        self.encoding = encoding
        self.delimiter = delimiter
        self.segment = segment
        self.source = source

    def _error(self, cause: str) -> SourceError:
        return SourceError(cause, segment=self.segment, source=self.source)

    def _open(self) -> TextIO:
        try:
            codec = codecs.lookup(self.encoding)
        except LookupError:
            raise self._error(f"unknown encoding '{self.encoding}' in the csv options") from None
        # A UTF-8 file written by a spreadsheet often starts with a byte
        # order mark, which would otherwise become part of the first column's name.
        encoding = "utf-8-sig" if codec.name == "utf-8" else codec.name
        with opening_errors(self.path, segment=self.segment, source=self.source):
            return self.path.open(encoding=encoding, errors="strict", newline="")

    def _reader(self, handle: TextIO) -> Iterator[list[str]]:
        try:
            reader = csv.reader(handle, delimiter=self.delimiter, strict=True)
        except TypeError as error:
            raise self._error(f"bad delimiter {self.delimiter!r}: {error}") from None
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as error:
                # The text layer decodes ahead in blocks, so the reader's line
                # number is not where the bad byte is; find it in the bytes.
                line = _line_of_decode_error(self.path, handle.encoding)
                where = f"line {line}: " if line is not None else ""
                raise self._error(
                    f"{where}cannot decode as {self.encoding} ({error.reason}); "
                    "set the source's csv.encoding"
                ) from None
            except csv.Error as error:
                raise self._error(f"line {reader.line_num}: malformed CSV: {error}") from None
            yield record

    def _header(self, records: Iterator[list[str]]) -> tuple[str, ...]:
        """The header's column names; an empty file (no header) is an error."""
        for record in records:
            if record:
                return tuple(name.strip() for name in record)
        raise self._error(f"the file is empty: no header line in {self.path}")

    def rows(self, columns: Sequence[str]) -> Iterator[tuple[object, ...]]:
        """Yield, per data row, the values of ``columns`` in that order."""
        with self._open() as handle:
            records = self._reader(handle)
            header = self._header(records)
            require_columns(
                header, columns, case_sensitive=True, segment=self.segment, source=self.source
            )
            positions = [header.index(column) for column in columns]
            for record in records:
                if not record:
                    continue
                width = len(record)
                yield tuple(
                    record[position] if position < width else None for position in positions
                )


def _line_of_decode_error(path: Path, encoding: str) -> int | None:
    """The 1-based line holding the first byte ``encoding`` cannot decode, if any."""
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
    except OSError:
        return None
    return None
