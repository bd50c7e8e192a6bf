"""What the state store keeps and raises: its records (and their stored forms), its errors."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import orjson

from omnisync.errors import OmnisyncError
from omnisync.inflight import InflightItem

RunStatus = Literal["running", "succeeded", "partial", "failed", "interrupted", "held"]


class StateError(OmnisyncError):
    """The state store cannot be used; the message says which file and why."""


class StateSchemaTooNew(StateError):
    """The database was written by a newer omnisync; it is refused and left untouched."""


class LeaseLost(StateError):
    """This replica no longer holds the brand's lease: the write was refused, nothing changed."""


@dataclass(frozen=True)
class Fence:
    """The lease a run's writes on a shared store must still hold: ``holder`` has ``brand``
    under ``token`` (a number that grows with every new holder of the brand)."""

    brand: str
    holder: str
    token: int


@dataclass(frozen=True)
class LedgerEntry:
    """One contact an export has delivered. ``tag_in_doubt``: a tags call for ``tag`` left
    and its answer is not recorded: the contact may or may not hold ``tag``."""

    export: str
    email: str
    fingerprint: int
    tag: str | None
    updated_at: str
    tag_in_doubt: bool = False


@dataclass(frozen=True)
class InflightBatch:
    """A batch Omnisend accepted for processing whose outcome is not yet recorded."""

    batch_id: str
    created_at: str
    items: tuple[InflightItem, ...]

    @property
    def emails(self) -> tuple[str, ...]:
        return tuple(item.email for item in self.items)


@dataclass(frozen=True)
class RunRecord:
    """One export run as history shows it. ``counts`` maps outcome names to numbers."""

    id: int
    export: str
    trigger: str
    config_revision: str
    started_at: str
    ended_at: str | None
    status: RunStatus
    counts: Mapping[str, int]
    error: str | None
    #: which replica ran it (``hostname:pid`` or ``daemon.replica_id``); ``None`` before v6
    replica: str | None


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-01-01T00:00:00.000Z``; sorts as text."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pack_items(items: Iterable[InflightItem]) -> str:
    """A batch's items as both stores keep them: the JSON text of ``[[email, fingerprint,
    then_tag], ...]`` (``then_tag`` 0 or 1), one item per e-mail, a later item winning."""
    unique = {item.email: (item.email, item.fingerprint, int(item.then_tag)) for item in items}
    return orjson.dumps(list(unique.values())).decode()


def run_record(row: Sequence[Any]) -> RunRecord:
    """A ``runs`` row (columns in field order); ``counts`` is JSON text (SQLite) or a dict."""
    run_id, export, trigger, revision, started_at, ended_at, status, counts, error, replica = row
    return RunRecord(
        id=int(run_id),
        export=export,
        trigger=trigger,
        config_revision=revision,
        started_at=started_at,
        ended_at=ended_at,
        status=cast(RunStatus, status),
        counts=json.loads(counts) if isinstance(counts, str) else dict(counts),
        error=error,
        replica=replica,
    )
