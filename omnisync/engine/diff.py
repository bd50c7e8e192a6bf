"""The diff of a staged segment against the ledger, in set-based SQL.

Materialises ``temp.work`` and ``temp.leavers`` from ``temp.omnisync_stage`` with
:func:`omnisync.planning.reference_plan`'s semantics. The stage side (SQLite)
counts rows, missing e-mails and duplicates; the ledger side (a
:class:`LedgerSide`) runs the ledger's SQL, written once, where the ledger
lives. Shaped for a million unchanged rows: one covering e-mail index read in
the ledger's key order, duplicates excluded through a small table, counts
derived by arithmetic, the leavers' anti-join run only when there are some.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from types import MappingProxyType
from typing import Any

from omnisync.config.model import Export
from omnisync.engine.results import SAMPLE_SIZE
from omnisync.masking import mask_email
from omnisync.planning import StageCounts

#: The columns of the staging tables a ledger side fills, in the order it fills them.
FILLED_COLUMNS: Mapping[str, str] = MappingProxyType(
    {"work": "seq, in_ledger, tag_on, needs_upsert, needs_tag", "leavers": "email, tag"}
)

#: How many rows travel at a time: read from the staging tables and, for a
#: PostgreSQL ledger, between the databases.
FETCH_SIZE = 2_000


@dataclass(frozen=True)
class DiffOutcome:
    """Counts and samples of one diff (the work is in the temp tables), seconds per phase."""

    counts: StageCounts
    duplicates_sample: tuple[str, ...]
    missing_email_rows: tuple[int, ...]
    timings: dict[str, float]


@dataclass(frozen=True)
class DiffTerms:
    """What a ledger side is asked about. ``members`` is an SQL condition on
    ``temp.omnisync_stage AS s`` that holds for exactly the members (the first row of each
    e-mail); ``full``: a resync (see :func:`run_diff`)."""

    export: str
    tag: str
    full: bool
    members: str


def run_diff(
    connection: sqlite3.Connection, export: Export, ledger: LedgerSide | None, *, full: bool
) -> DiffOutcome:
    """Diff ``temp.omnisync_stage`` against ``export``'s ``ledger`` (``None``: every member is new).

    ``full`` (a resync): every member is work that needs the upsert and the
    tag; a member the ledger knows stays ``in_ledger`` (no consent status is
    sent for it) and counts as changed; its tag counts as not on (added again,
    never removed as an "old" tag), as does the export's tag in doubt on any
    diff. Must run inside the caller's transaction (and ``ledger`` inside one
    snapshot of its own).
    """
    marks = [("", time.perf_counter())]
    connection.execute(
        "CREATE INDEX temp.omnisync_stage_by_email ON omnisync_stage (email, fingerprint)"
    )
    marks.append(("index", time.perf_counter()))
    rows = _scalar(connection, "SELECT count(*) FROM temp.omnisync_stage")
    missing = _scalar(connection, "SELECT count(*) FROM temp.omnisync_stage WHERE email IS NULL")
    missing_rows = tuple(
        int(seq)
        for (seq,) in connection.execute(
            "SELECT seq FROM temp.omnisync_stage WHERE email IS NULL ORDER BY seq LIMIT ?",
            (SAMPLE_SIZE,),
        )
    )

    # Counting distinct e-mails costs a third of grouping them with their
    # first row and copies; the grouping runs only when there are copies.
    distinct = _scalar(
        connection,
        "SELECT count(*) FROM "
        "(SELECT DISTINCT email FROM temp.omnisync_stage WHERE email IS NOT NULL)",
    )
    duplicates = rows - missing - distinct
    duplicates_sample: tuple[str, ...] = ()
    members_condition = "s.email IS NOT NULL"
    if duplicates:
        connection.execute(
            "CREATE TEMP TABLE duplicate_groups AS "
            "SELECT email, min(seq) AS first_seq, count(*) AS copies FROM temp.omnisync_stage "
            "WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1"
        )
        duplicates_sample = tuple(
            mask_email(email)
            for (email,) in connection.execute(
                "SELECT email FROM temp.duplicate_groups ORDER BY first_seq LIMIT ?",
                (SAMPLE_SIZE,),
            )
        )
        connection.execute(
            "CREATE TEMP TABLE later_copies AS SELECT s.seq AS seq "
            "FROM temp.duplicate_groups AS d JOIN temp.omnisync_stage AS s "
            "ON s.email = d.email AND s.seq > d.first_seq"
        )
        connection.execute("CREATE UNIQUE INDEX temp.later_copies_seq ON later_copies (seq)")
        members_condition += " AND s.seq NOT IN (SELECT seq FROM temp.later_copies)"
    marks.append(("duplicates", time.perf_counter()))

    terms = DiffTerms(export=export.name, tag=export.tag, full=full, members=members_condition)
    members = rows - missing - duplicates
    connection.execute(
        "CREATE TEMP TABLE work (seq INTEGER PRIMARY KEY, in_ledger INTEGER NOT NULL, "
        "tag_on TEXT, needs_upsert INTEGER NOT NULL, needs_tag INTEGER NOT NULL)"
    )
    if ledger is None:
        connection.execute(
            f"INSERT INTO temp.work ({FILLED_COLUMNS['work']}) "
            f"SELECT s.seq, 0, NULL, 1, 1 FROM temp.omnisync_stage AS s WHERE {terms.members}"
        )
        delivered = tagged = members_tagged = 0
    else:
        ledger.fill_work(terms)
        delivered, tagged, in_doubt = ledger.totals(terms)
        # A resync, and a tag in doubt, show the export's own tag as not on: those
        # are counted apart.
        members_tagged = ledger.members_tagged(terms) if full or in_doubt else 0
    work, new, changed, tag_only, retag, tagged_in_work, needs_tag = connection.execute(
        "SELECT count(*), "
        "coalesce(sum(NOT in_ledger), 0), "
        "coalesce(sum(in_ledger AND needs_upsert), 0), "
        "coalesce(sum(in_ledger AND NOT needs_upsert), 0), "
        "coalesce(sum(needs_tag AND tag_on IS NOT NULL), 0), "
        "coalesce(sum(tag_on IS NOT NULL), 0), "
        "coalesce(sum(needs_tag), 0) "
        "FROM temp.work"
    ).fetchone()
    marks.append(("work", time.perf_counter()))
    unchanged = members - work
    # Every tagged ledger entry whose e-mail is a member is either unchanged
    # (its tag is the export's) or a work item with a tag on; the rest left.
    gone = tagged - unchanged - tagged_in_work - members_tagged

    connection.execute("CREATE TEMP TABLE leavers (email TEXT PRIMARY KEY, tag TEXT NOT NULL)")
    on_leave = export.on_leave
    if gone and on_leave == "untag" and ledger is not None:
        ledger.fill_leavers(terms)
    marks.append(("counts and leavers", time.perf_counter()))
    counts = StageCounts(
        rows=rows,
        members=members,
        missing_email=missing,
        duplicates=duplicates,
        new=new,
        changed=changed,
        tag_only=tag_only,
        unchanged=unchanged,
        leaving=gone if on_leave == "untag" else 0,
        retag=retag,
        kept=gone if on_leave == "keep" else 0,
        needs_tag=needs_tag,
        delivered=delivered,
        tagged=tagged,
    )
    laps = {phase: end - start for (_, start), (phase, end) in pairwise(marks)}
    return DiffOutcome(
        counts=counts,
        duplicates_sample=duplicates_sample,
        missing_email_rows=missing_rows,
        timings={**laps, **(ledger.timings if ledger is not None else {})},
    )


class LedgerSide:
    """The ledger half of a diff against the ``staging`` connection's tables, its SQL
    written once in SQLite's words (``:name`` parameters), every call in one snapshot
    of the ledger, for a SQLite ledger ATTACHed as ``ledger``. A subclass runs it
    elsewhere, saying where the members and tables are and how to run SQL there.
    """

    _entries = "ledger.ledger_entries"
    _brands = "ledger.export_brands"

    def __init__(self, staging: sqlite3.Connection) -> None:
        self._staging = staging
        self.timings: dict[str, float] = {}  # the ledger's own phases, added to the diff's
        self._doubt: str | None = None

    def _in_doubt(self) -> str:
        """An entry ``l``'s ``tag_in_doubt``; ``0`` in a ledger older than that column (a
        state file ``plan`` reads as it finds it, unmigrated): none in doubt there."""
        if self._doubt is None:
            columns = self._staging.execute("PRAGMA ledger.table_info('ledger_entries')")
            found = any(column[1] == "tag_in_doubt" for column in columns)
            self._doubt = "l.tag_in_doubt" if found else "0"
        return self._doubt

    def _members(self, terms: DiffTerms) -> tuple[str, str]:
        """The members: a ``FROM`` item aliased ``s`` (``seq``, ``email``,
        ``fingerprint``) and the condition that selects them from it."""
        # In e-mail order, from the covering index alone, probing the ledger's
        # primary key in the same order.
        return "temp.omnisync_stage AS s INDEXED BY omnisync_stage_by_email", terms.members

    def _fetch(self, sql: str, parameters: Mapping[str, object]) -> Sequence[Any]:
        """The one row of ``sql``."""
        return tuple(self._staging.execute(sql, parameters).fetchone())

    def _insert(self, table: str, select: str, parameters: Mapping[str, object]) -> None:
        """Insert the rows of ``select`` into ``temp.<table>`` (its :data:`FILLED_COLUMNS`)."""
        self._staging.execute(
            f"INSERT INTO temp.{table} ({FILLED_COLUMNS[table]}) {select}", parameters
        )

    def has_entries(self, export: str, *, brand: str | None) -> bool:
        """Whether the ledger holds entries of ``export`` to diff against: not when
        it records the export as delivering to a brand other than ``brand``
        (``None``: no check), whose entries a run forgets (``LedgerStore.retarget``)."""
        parameters = {"export": export, "brand": brand}
        if brand is not None:
            (moved,) = self._fetch(
                f"SELECT count(*) FROM {self._brands} WHERE export = :export AND brand <> :brand",
                parameters,
            )
            if moved:
                return False
        (found,) = self._fetch(
            f"SELECT EXISTS (SELECT 1 FROM {self._entries} WHERE export = :export)", parameters
        )
        return bool(found)

    def fill_work(self, terms: DiffTerms) -> None:
        """Insert into ``temp.work`` a row per member that is work: ``terms.full``, no
        ledger entry, another fingerprint, a tag other than ``terms.tag``, or a tag in
        doubt (the export's own then shown as not on, to be added again)."""
        source, members = self._members(terms)
        doubt = self._in_doubt()
        # `l.tag IS NULL OR l.tag <> :tag` (the tag is never NULL) rather than IS
        # DISTINCT FROM, which SQLite reads only from 3.39 on.
        self._insert(
            "work",
            "SELECT s.seq, l.email IS NOT NULL, "
            f"CASE WHEN (:full OR {doubt}) AND l.tag = :tag THEN NULL ELSE l.tag END, "
            ":full OR l.email IS NULL OR l.fingerprint <> s.fingerprint, "
            f":full OR l.tag IS NULL OR l.tag <> :tag OR {doubt} "
            f"FROM {source} LEFT JOIN {self._entries} AS l "
            "ON l.export = :export AND l.email = s.email "
            f"WHERE {members} AND (:full OR l.email IS NULL OR l.fingerprint <> s.fingerprint "
            f"OR l.tag IS NULL OR l.tag <> :tag OR {doubt}) ORDER BY s.seq",
            {"export": terms.export, "tag": terms.tag, "full": terms.full},
        )

    def totals(self, terms: DiffTerms) -> tuple[int, int, int]:
        """``(entries, tagged entries, entries in doubt)`` of the export's ledger."""
        delivered, tagged, in_doubt = self._fetch(
            f"SELECT count(*), count(l.tag), count(CASE WHEN {self._in_doubt()} THEN 1 END) "
            f"FROM {self._entries} AS l WHERE l.export = :export",
            {"export": terms.export},
        )
        return int(delivered), int(tagged), int(in_doubt)

    def members_tagged(self, terms: DiffTerms) -> int:
        """How many members have a ledger entry carrying ``terms.tag`` that :meth:`fill_work`
        shows as not on: all for a resync, else those in doubt."""
        source, members = self._members(terms)
        (count,) = self._fetch(
            f"SELECT count(*) FROM {source} JOIN {self._entries} AS l "
            "ON l.export = :export AND l.email = s.email AND l.tag = :tag "
            f"AND (:full OR {self._in_doubt()}) WHERE {members}",
            {"export": terms.export, "tag": terms.tag, "full": terms.full},
        )
        return int(count)

    def fill_leavers(self, terms: DiffTerms) -> None:
        """Insert into ``temp.leavers`` each tagged entry whose e-mail is not a member's."""
        source, members = self._members(terms)
        self._insert(
            "leavers",
            f"SELECT l.email, l.tag FROM {self._entries} AS l "
            "WHERE l.export = :export AND l.tag IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {source} WHERE s.email = l.email AND {members})",
            {"export": terms.export},
        )


def _scalar(connection: sqlite3.Connection, sql: str) -> int:
    return int(connection.execute(sql).fetchone()[0])
