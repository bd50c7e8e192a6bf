"""The diff of a staged segment against the ledger, in set-based SQL.

Runs on a connection holding ``temp.stage`` (filled by
:mod:`omnisync.engine.staging`) and the ledger ATTACHed as ``ledger``.
Materialises ``temp.work`` (members that need an upsert and/or the tag)
and ``temp.leavers``, and returns the counts. The semantics are
:func:`omnisync.planning.reference_plan`'s; the SQL is shaped for a
million unchanged rows:

- the e-mail index is built once, after the bulk insert, and covers the
  fingerprint, so the diff reads the stage in e-mail order from the index
  alone and probes the ledger's primary key in the same order;
- duplicates are found with one ``GROUP BY ... HAVING`` over that index and,
  being rare, excluded through a small table rather than a correlated
  subquery per row;
- ``unchanged`` and the number of leavers are derived by arithmetic from the
  (usually small) work table and one count of the ledger, and the anti-join
  that lists leavers runs only when there are some.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

from omnisync.config.model import OnLeave
from omnisync.masking import mask_email
from omnisync.planning import StageCounts


@dataclass(frozen=True)
class DiffOutcome:
    """Counts and samples of one diff; the work itself is in the temp tables."""

    counts: StageCounts
    duplicates_sample: tuple[str, ...]
    missing_email_rows: tuple[int, ...]
    #: seconds spent per phase, for benchmarks and debug logs
    timings: dict[str, float] = field(default_factory=dict)


def run_diff(
    connection: sqlite3.Connection,
    *,
    export: str,
    tag: str,
    on_leave: OnLeave,
    full: bool = False,
    sample_size: int = 5,
) -> DiffOutcome:
    """Diff ``temp.stage`` against ``ledger.ledger_entries`` for ``export``.

    ``full`` (a resync): every member is work that needs the upsert and the
    tag, as if first; a member the ledger knows stays ``in_ledger`` (no
    consent status is sent for it) and counts as changed; its tag counts as
    not on (so it is added again, and never removed as an "old" tag).

    Must run inside the caller's transaction so that every read of the
    ledger sees one snapshot.
    """
    clock = _PhaseClock()
    connection.execute("CREATE INDEX temp.stage_by_email ON stage (email, fingerprint)")
    clock.lap("index")
    rows = _scalar(connection, "SELECT count(*) FROM temp.stage")
    missing = _scalar(connection, "SELECT count(*) FROM temp.stage WHERE email IS NULL")
    missing_rows = tuple(
        int(seq)
        for (seq,) in connection.execute(
            "SELECT seq FROM temp.stage WHERE email IS NULL ORDER BY seq LIMIT ?", (sample_size,)
        )
    )

    # Counting distinct e-mails costs a third of grouping them with their
    # first row and copies; the grouping runs only when there are copies.
    distinct = _scalar(
        connection,
        "SELECT count(*) FROM (SELECT DISTINCT email FROM temp.stage WHERE email IS NOT NULL)",
    )
    duplicates = rows - missing - distinct
    duplicates_sample: tuple[str, ...] = ()
    exclude_copies = ""
    if duplicates:
        connection.execute(
            "CREATE TEMP TABLE duplicate_groups AS "
            "SELECT email, min(seq) AS first_seq, count(*) AS copies FROM temp.stage "
            "WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1"
        )
        duplicates_sample = tuple(
            mask_email(email)
            for (email,) in connection.execute(
                "SELECT email FROM temp.duplicate_groups ORDER BY first_seq LIMIT ?",
                (sample_size,),
            )
        )
        connection.execute(
            "CREATE TEMP TABLE later_copies AS SELECT s.seq AS seq "
            "FROM temp.duplicate_groups AS d JOIN temp.stage AS s "
            "ON s.email = d.email AND s.seq > d.first_seq"
        )
        connection.execute("CREATE UNIQUE INDEX temp.later_copies_seq ON later_copies (seq)")
        exclude_copies = "AND s.seq NOT IN (SELECT seq FROM later_copies)"
    clock.lap("duplicates")

    members = rows - missing - duplicates
    connection.execute(
        "CREATE TEMP TABLE work (seq INTEGER PRIMARY KEY, in_ledger INTEGER NOT NULL, "
        "tag_on TEXT, needs_upsert INTEGER NOT NULL, needs_tag INTEGER NOT NULL)"
    )
    work, new, changed, tag_only, retag, tagged_in_work, needs_tag = _diff_against_ledger(
        connection, export=export, tag=tag, exclude_copies=exclude_copies, full=full
    )
    clock.lap("work")
    ledger_delivered, ledger_tagged = connection.execute(
        "SELECT count(*), count(tag) FROM ledger.ledger_entries WHERE export = ?", (export,)
    ).fetchone()
    unchanged = members - work
    # Every tagged ledger entry whose e-mail is a member is either unchanged
    # (its tag is the export's) or a work item with a tag on; the rest left.
    # (A resync shows the export's own tag as not on: those are counted here.)
    gone = (
        ledger_tagged
        - unchanged
        - tagged_in_work
        - (
            _scalar(
                connection,
                "SELECT count(*) FROM temp.stage AS s JOIN ledger.ledger_entries AS l "
                "ON l.export = ? AND l.email = s.email AND l.tag = ? "
                f"WHERE s.email IS NOT NULL {exclude_copies}",
                (export, tag),
            )
            if full
            else 0
        )
    )

    connection.execute("CREATE TEMP TABLE leavers (email TEXT PRIMARY KEY, tag TEXT NOT NULL)")
    if gone and on_leave == "untag":
        connection.execute(
            "INSERT INTO temp.leavers (email, tag) "
            "SELECT l.email, l.tag FROM ledger.ledger_entries AS l "
            "WHERE l.export = ? AND l.tag IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM temp.stage AS s WHERE s.email = l.email)",
            (export,),
        )
    clock.lap("counts and leavers")
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
        delivered=int(ledger_delivered),
        tagged=int(ledger_tagged),
    )
    return DiffOutcome(
        counts=counts,
        duplicates_sample=duplicates_sample,
        missing_email_rows=missing_rows,
        timings=clock.laps,
    )


def _diff_against_ledger(
    connection: sqlite3.Connection, *, export: str, tag: str, exclude_copies: str, full: bool
) -> tuple[int, int, int, int, int, int, int]:
    """Fill ``temp.work`` from the stage and the ledger; return its counts:
    work, new, changed, tag only, retag, work items with a tag on, and those
    that need the export's tag."""
    connection.execute(
        "INSERT INTO temp.work (seq, in_ledger, tag_on, needs_upsert, needs_tag) "
        "SELECT s.seq, l.email IS NOT NULL, "
        "CASE WHEN :full AND l.tag = :tag THEN NULL ELSE l.tag END, "
        ":full OR l.email IS NULL OR l.fingerprint <> s.fingerprint, "
        ":full OR l.tag IS NOT :tag "
        "FROM temp.stage AS s INDEXED BY stage_by_email "
        "LEFT JOIN ledger.ledger_entries AS l ON l.export = :export AND l.email = s.email "
        "WHERE s.email IS NOT NULL "
        "AND (:full OR l.email IS NULL OR l.fingerprint <> s.fingerprint OR l.tag IS NOT :tag) "
        f"{exclude_copies}",
        {"export": export, "tag": tag, "full": int(full)},
    )
    counts = connection.execute(
        "SELECT count(*), "
        "coalesce(sum(NOT in_ledger), 0), "
        "coalesce(sum(in_ledger AND needs_upsert), 0), "
        "coalesce(sum(in_ledger AND NOT needs_upsert), 0), "
        "coalesce(sum(needs_tag AND tag_on IS NOT NULL), 0), "
        "coalesce(sum(tag_on IS NOT NULL), 0), "
        "coalesce(sum(needs_tag), 0) "
        "FROM temp.work"
    ).fetchone()
    work, new, changed, tag_only, retag, tagged_in_work, needs_tag = (
        int(count) for count in counts
    )
    return work, new, changed, tag_only, retag, tagged_in_work, needs_tag


def _scalar(connection: sqlite3.Connection, sql: str, parameters: tuple[object, ...] = ()) -> int:
    row = connection.execute(sql, parameters).fetchone()
    return int(row[0])


class _PhaseClock:
    """Seconds per phase, measured back to back."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.laps[phase] = now - self._last
        self._last = now
