"""A staged, diffed export, as :func:`~omnisync.engine.staging.stage_export` yields it."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from omnisync.config.model import Export
from omnisync.planning import Leaver, SourceRow, StageCounts, WorkItem, WorkRecord

_new_tuple = tuple.__new__

#: How many rows :meth:`StagedExport.work` fetches at a time (and, for a PostgreSQL
#: ledger, how many travel between the databases at a time).
FETCH_SIZE = 2_000


class StagedMember(NamedTuple):
    """One member as the segment holds it now: the row a run maps for that e-mail.

    ``position`` is the row's place in the segment (1 for the first row);
    ``work`` is the member's work item, ``None`` when a run has nothing to do;
    ``rows`` how many rows of the segment carry the e-mail (the first wins).
    """

    email: str
    position: int
    fingerprint: int
    row: SourceRow
    work: WorkItem | None
    rows: int


@dataclass(frozen=True)
class StagedExport:
    """A staged, diffed export: counts, samples, and streams of the work to do.

    Valid only inside :func:`~omnisync.engine.staging.stage_export`'s ``with``
    block. Not thread-safe: use it from one thread at a time (any thread).
    ``timings``: seconds spent per phase (stage, index, duplicates, work...).
    """

    connection: sqlite3.Connection = field(repr=False)
    export: Export
    source_name: str
    columns: tuple[str, ...]
    counts: StageCounts
    duplicates_sample: tuple[str, ...]
    missing_email_rows: tuple[int, ...]
    timings: Mapping[str, float]

    def work(self) -> Iterator[WorkItem]:
        """Members that need an upsert and/or the tag, in segment order (each pass
        reads the materialised work again)."""
        work_item = self.work_item
        for records in self.work_records():
            for record in records:
                yield work_item(record)

    def work_records(self) -> Iterator[list[WorkRecord]]:
        """:meth:`work` as lists of raw records (``(email, fingerprint, in_ledger, tag_on,
        needs_upsert, needs_tag, *values)``), for a loop that wants no object per member."""
        values = ", ".join(f"s.c{index}" for index in range(len(self.columns)))
        return self._batches(
            "SELECT s.email, s.fingerprint, w.in_ledger, w.tag_on, w.needs_upsert, "
            f"w.needs_tag, {values} FROM temp.work AS w "
            "JOIN temp.stage AS s ON s.seq = w.seq ORDER BY w.seq"
        )

    def work_item(self, record: WorkRecord) -> WorkItem:
        """The :class:`~omnisync.planning.WorkItem` of a :meth:`work_records` record."""
        # WorkItem(...) without its Python-level __new__: once per member.
        return _new_tuple(
            WorkItem,
            (
                record[0],
                record[1],
                bool(record[2]),
                record[3],
                bool(record[4]),
                bool(record[5]),
                SourceRow(self.columns, record[6:]),
            ),
        )

    def leavers(self) -> Iterator[Leaver]:
        """Ledger members who left the segment and carry a tag to remove, by e-mail
        (none with ``on_leave: keep``)."""
        for batch in self._batches("SELECT email, tag FROM temp.leavers ORDER BY email"):
            for email, tag in batch:
                yield Leaver(email, tag)

    def _batches(self, sql: str) -> Iterator[list[Any]]:
        cursor = self.connection.execute(sql)
        try:
            while batch := cursor.fetchmany(FETCH_SIZE):
                yield batch
        finally:
            cursor.close()

    def members_of(self, emails: Collection[str]) -> dict[str, StagedMember]:
        """The members among ``emails`` (normalised), each with the row a run uses
        (the first row that carries the e-mail). One indexed query, for a few e-mails."""
        wanted = orjson.dumps(sorted(set(emails))).decode()
        values = ", ".join(f"s.c{index}" for index in range(len(self.columns)))
        cursor = self.connection.execute(
            "SELECT count(*) OVER (PARTITION BY s.email), s.seq, w.seq IS NOT NULL, s.email, "
            "s.fingerprint, w.in_ledger, w.tag_on, w.needs_upsert, w.needs_tag, "
            f"{values} FROM temp.stage AS s LEFT JOIN temp.work AS w ON w.seq = s.seq "
            "WHERE s.email IN (SELECT value FROM json_each(?)) ORDER BY s.seq",
            (wanted,),
        )
        found: dict[str, StagedMember] = {}
        for copies, seq, in_work, *record in cursor:
            # From the e-mail on, a record of :meth:`work_records`' shape.
            email, fingerprint = record[0], record[1]
            if email not in found:
                work = self.work_item(record) if in_work else None
                row = SourceRow(self.columns, tuple(record[6:]))
                found[email] = StagedMember(email, seq, fingerprint, row, work, copies)
        return found

    def leaver_tags(self, emails: Collection[str]) -> dict[str, str]:
        """The leavers among ``emails``: e-mail -> the tag a run would remove."""
        wanted = orjson.dumps(sorted(set(emails))).decode()
        return dict(
            self.connection.execute(
                "SELECT email, tag FROM temp.leavers "
                "WHERE email IN (SELECT value FROM json_each(?))",
                (wanted,),
            ).fetchall()
        )
