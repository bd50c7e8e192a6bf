"""A staged, diffed export, as :func:`~omnisync.engine.staging.stage_export` yields it.

:class:`StagedExport` reads what the staging materialised: the counts and
samples, the work (as :class:`~omnisync.planning.WorkItem`s, or as raw
:data:`~omnisync.planning.WorkRecord`s for a loop that wants no object per
member) and the leavers, from the temporary tables of the staging connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping
from typing import Any, NamedTuple

import orjson

from omnisync.config.model import Export
from omnisync.planning import Leaver, SourceRow, StageCounts, WorkItem, WorkRecord

_new_tuple = tuple.__new__


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
    rows: int = 1


class StagedExport:
    """A staged, diffed export: counts, samples, and streams of the work to do.

    Valid only inside :func:`~omnisync.engine.staging.stage_export`'s ``with``
    block. Not thread-safe: use it from one thread at a time (any thread).
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        export: Export,
        source_name: str,
        columns: tuple[str, ...],
        counts: StageCounts,
        duplicates_sample: tuple[str, ...],
        missing_email_rows: tuple[int, ...],
        fetch_size: int,
        timings: Mapping[str, float],
    ) -> None:
        self._connection = connection
        self.export = export
        self.source_name = source_name
        self.columns = columns
        self.counts = counts
        self.duplicates_sample = duplicates_sample
        self.missing_email_rows = missing_email_rows
        self.fetch_size = fetch_size
        #: seconds spent per phase (stage, index, duplicates, work, ...)
        self.timings = timings

    def work(self) -> Iterator[WorkItem]:
        """Members that need an upsert and/or the tag, in segment order.

        ``item.row`` maps each of :attr:`columns` to the row's raw value. May
        be iterated more than once; each pass reads the materialised work.
        """
        work_item = self.work_item
        for records in self.work_records():
            for record in records:
                yield work_item(record)

    def work_records(self) -> Iterator[list[WorkRecord]]:
        """:meth:`work` as lists of raw records, for a loop that wants no object per member.

        A record is ``(email, fingerprint, in_ledger, tag_on, needs_upsert,
        needs_tag, *values)`` with the values in :attr:`columns` order.
        :meth:`work_item` turns a record into the :class:`~omnisync.planning.WorkItem` :meth:`work`
        yields.
        """
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
        """Ledger members who left the segment and carry a tag to remove, by e-mail.

        Empty when the export's ``on_leave`` is ``keep``.
        """
        for batch in self._batches("SELECT email, tag FROM temp.leavers ORDER BY email"):
            for email, tag in batch:
                yield Leaver(email, tag)

    def _batches(self, sql: str) -> Iterator[list[Any]]:
        """The rows of ``sql``, :attr:`fetch_size` at a time; the cursor closes with the loop."""
        cursor = self._connection.execute(sql)
        try:
            while batch := cursor.fetchmany(self.fetch_size):
                yield batch
        finally:
            cursor.close()

    def members_of(self, emails: Collection[str]) -> dict[str, StagedMember]:
        """The members among ``emails`` (normalised), each with the row a run uses.

        E-mails not in the segment are left out. When several rows carry an
        e-mail, the first one is the member's (the diff's rule, read back:
        only a first row can be a work item). One indexed query, for a few
        e-mails (``omnisync drift`` and ``omnisync explain``).
        """
        wanted = orjson.dumps(sorted(set(emails))).decode()
        values = ", ".join(f"s.c{index}" for index in range(len(self.columns)))
        cursor = self._connection.execute(
            "SELECT s.seq, w.seq IS NOT NULL, s.email, s.fingerprint, w.in_ledger, w.tag_on, "
            f"w.needs_upsert, w.needs_tag, {values} FROM temp.stage AS s "
            "LEFT JOIN temp.work AS w ON w.seq = s.seq "
            "WHERE s.email IN (SELECT value FROM json_each(?)) ORDER BY s.seq",
            (wanted,),
        )
        found: dict[str, StagedMember] = {}
        copies: dict[str, int] = {}
        for record in cursor:
            email = record[2]
            copies[email] = copies.get(email, 0) + 1
            if email in found:
                continue
            # From the e-mail on, a record of :meth:`work_records`' shape.
            work = self.work_item(record[2:]) if record[1] else None
            row = SourceRow(self.columns, tuple(record[8:]))
            found[email] = StagedMember(email, int(record[0]), int(record[3]), row, work)
        return {email: member._replace(rows=copies[email]) for email, member in found.items()}

    def leaver_tags(self, emails: Collection[str]) -> dict[str, str]:
        """The leavers among ``emails``: e-mail -> the tag a run would remove."""
        wanted = orjson.dumps(sorted(set(emails))).decode()
        return dict(
            self._connection.execute(
                "SELECT email, tag FROM temp.leavers "
                "WHERE email IN (SELECT value FROM json_each(?))",
                (wanted,),
            ).fetchall()
        )
