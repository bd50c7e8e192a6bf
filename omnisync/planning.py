"""What an export run has to do: plan types and the reference planner. Pure.

The engine diffs a segment against the ledger in SQL (:mod:`omnisync.engine.diff`);
:func:`reference_plan` is the same diff written plainly in Python, held equal to
the SQL by a property-based test, and so it defines the semantics:

- Rows without an e-mail are counted as ``missing_email``; among rows with
  the same (normalised) e-mail the first occurrence wins and the rest are
  ``duplicates``. The distinct e-mails are the segment's ``members``.
- A member not in the ledger is ``new``; one whose fingerprint differs from
  the ledger's is ``changed``; both need an upsert.
- A member whose ledger tag is not the export's tag (none yet, or an old tag
  after the export's tag was renamed) needs the tag; when its fingerprint is
  unchanged it is ``tag_only``. A member whose ledger tag is another tag is
  also counted in ``retag``: that old tag is to be removed.
- A ledger tag *in doubt* (a tags call for it left, its answer never recorded)
  may or may not be on the contact: the export's own tag in doubt counts as not
  on (added again, never removed as an old tag); another tag in doubt is an old
  tag as any (removed again).
- A member in the ledger with the same fingerprint and the export's tag, not
  in doubt, is ``unchanged``: nothing is sent.
- A ledger entry with a tag whose e-mail is no longer a member has left: with
  ``on_leave: untag`` it is a leaver (``leaving``; its tag, whatever it is, in
  doubt or not, is to be removed), with ``on_leave: keep`` it is only counted
  (``kept``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from omnisync.config.model import OnLeave


@dataclass(frozen=True)
class StageCounts:
    """Counts of one staged export (the module docstring says what each means).

    ``new + changed + tag_only + unchanged == members`` and
    ``members + duplicates + missing_email == rows``. ``needs_tag``: work items
    that need the export's tag. ``delivered`` and ``tagged``: the export's ledger
    entries before the run, and those that carry a tag.
    """

    rows: int = 0
    members: int = 0
    missing_email: int = 0
    duplicates: int = 0
    new: int = 0
    changed: int = 0
    tag_only: int = 0
    unchanged: int = 0
    leaving: int = 0
    retag: int = 0
    kept: int = 0
    needs_tag: int = 0
    delivered: int = 0
    tagged: int = 0

    @property
    def work(self) -> int:
        """Members that need an upsert and/or a tag."""
        return self.new + self.changed + self.tag_only


class SourceRow(Mapping[str, object]):
    """A staged row as a read-only mapping, column -> raw value: the staging's ``columns``
    (one tuple shared by every row) and the row's values in that order (``raw``, which
    :class:`omnisync.mapping.MappingPlan` reads directly). Equal to a ``dict`` of its items.
    """

    __slots__ = ("columns", "raw")

    def __init__(self, columns: tuple[str, ...], raw: tuple[object, ...]) -> None:
        self.columns = columns
        self.raw = raw

    def __getitem__(self, column: str) -> object:
        try:
            return self.raw[self.columns.index(column)]
        except ValueError:
            raise KeyError(column) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)


class WorkItem(NamedTuple):
    """One member that needs an upsert and/or the export's tag (a named tuple: a first run
    builds a million). ``tag_on``: the tag the ledger says this export put on the contact
    (``None`` when none; another than the export's after a rename). ``row``: the raw values.
    """

    email: str
    fingerprint: int
    in_ledger: bool
    tag_on: str | None
    needs_upsert: bool
    needs_tag: bool
    row: Mapping[str, object]

    @property
    def old_tag(self) -> str | None:
        """The other tag to remove once the export's tag is on, if any."""
        return self.tag_on if self.needs_tag else None


#: A raw work record, what ``StagedExport.work_records`` yields instead of a
#: :class:`WorkItem`: ``(email, fingerprint, in_ledger, tag_on, needs_upsert,
#: needs_tag, *values)``.
WorkRecord = tuple[object, ...]


class Leaver(NamedTuple):
    """A ledger member no longer in the segment, and the tag to remove from it."""

    email: str
    tag: str


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger says this export delivered to one e-mail (``tag_in_doubt``: ``tag``
    may or may not be on the contact)."""

    fingerprint: int
    tag: str | None
    tag_in_doubt: bool = False


@dataclass(frozen=True)
class SegmentRow:
    """A staged row: its normalised e-mail (``None`` when missing) and fingerprint."""

    email: str | None
    fingerprint: int
    row: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferencePlan:
    """The result of :func:`reference_plan`: counts, work items in segment order, leavers."""

    counts: StageCounts
    work: tuple[WorkItem, ...]
    leavers: tuple[Leaver, ...]
    duplicates: tuple[str, ...]


@dataclass(frozen=True)
class ItemActions:
    """What to send for one work item once its mapping outcome is known."""

    upsert: bool
    tag: bool
    remove_old_tag: str | None


def item_actions(item: WorkItem, *, valid: bool) -> ItemActions:
    """The actions for ``item``; ``valid`` says whether its row mapped to a contact.

    An invalid row that needs an upsert is not sent at all (no upsert, no tag); a
    tag-only item needs no mapping. The old tag is removed only with adding the new one.
    """
    if item.needs_upsert and not valid:
        return _ACTIONS[False, False]
    old_tag = item.old_tag
    if old_tag is None:
        # The common case, once per work item of a run: shared (frozen) instances.
        return _ACTIONS[item.needs_upsert, item.needs_tag]
    return ItemActions(upsert=item.needs_upsert, tag=item.needs_tag, remove_old_tag=old_tag)


_ACTIONS = {
    (upsert, tag): ItemActions(upsert=upsert, tag=tag, remove_old_tag=None)
    for upsert in (False, True)
    for tag in (False, True)
}


def reference_plan(
    rows: Iterable[SegmentRow],
    ledger: Mapping[str, LedgerEntry],
    *,
    tag: str,
    on_leave: OnLeave,
) -> ReferencePlan:
    """Diff staged ``rows`` (in segment order) against one export's ``ledger``.

    ``ledger`` maps e-mail → entry for this export only. Leavers are ordered
    by e-mail; work items and duplicated e-mails by their first occurrence.
    """
    tally: Counter[str] = Counter()  # the counts named as StageCounts' fields
    firsts: dict[str, SegmentRow] = {}
    duplicated: set[str] = set()
    for row in rows:
        tally["rows"] += 1
        if row.email is None:
            tally["missing_email"] += 1
        elif row.email in firsts:
            tally["duplicates"] += 1
            duplicated.add(row.email)
        else:
            firsts[row.email] = row

    work: list[WorkItem] = []
    for email, row in firsts.items():
        entry = ledger.get(email)
        needs_upsert = entry is None or entry.fingerprint != row.fingerprint
        tag_on = None if entry is None or (entry.tag_in_doubt and entry.tag == tag) else entry.tag
        needs_tag = tag_on != tag
        if entry is None:
            tally["new"] += 1
        elif needs_upsert:
            tally["changed"] += 1
        elif needs_tag:
            tally["tag_only"] += 1
        else:
            tally["unchanged"] += 1
            continue
        tally["needs_tag"] += needs_tag
        tally["retag"] += needs_tag and tag_on is not None
        work.append(
            WorkItem(
                email=email,
                fingerprint=row.fingerprint,
                in_ledger=entry is not None,
                tag_on=tag_on,
                needs_upsert=needs_upsert,
                needs_tag=needs_tag,
                row=row.row,
            )
        )

    gone = sorted(
        Leaver(email, entry.tag)
        for email, entry in ledger.items()
        if entry.tag is not None and email not in firsts
    )
    leavers = tuple(gone) if on_leave == "untag" else ()
    counts = StageCounts(
        members=len(firsts),
        leaving=len(leavers),
        kept=0 if on_leave == "untag" else len(gone),
        delivered=len(ledger),
        tagged=sum(entry.tag is not None for entry in ledger.values()),
        **tally,
    )
    return ReferencePlan(
        counts=counts,
        work=tuple(work),
        leavers=leavers,
        duplicates=tuple(email for email in firsts if email in duplicated),
    )
