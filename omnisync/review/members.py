"""Members per export from the state store, read without creating it. The state shell.

``omnisync diff`` costs a change by the members each export's ledger holds
(its tagged entries, :meth:`~omnisync.state.LedgerStore.count_entries`). A
state directory without a state database is *unknown*, not empty: nothing
is created, and the review says that counts are unknown. So is a shared
(PostgreSQL) store that cannot be opened: the note names the store, never
its DSN or password.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from omnisync.config.model import DaemonSettings
from omnisync.state import SqliteLedgerStore, StateError, state_path
from omnisync.state.opening import open_configured_store


@dataclass(frozen=True)
class MemberCounts:
    """Members by export; ``known`` false when there was no usable store (``note`` says why)."""

    known: bool
    note: str
    counts: dict[str, int] = field(default_factory=dict)

    def __call__(self, export: str) -> int | None:
        return self.counts.get(export) if self.known else None


def ledger_members(state_dir: str, exports: Iterable[str]) -> MemberCounts:
    """The tagged ledger entries of each of ``exports`` in the SQLite store under ``state_dir``."""
    path = state_path(state_dir)
    if not os.path.isfile(path):
        return MemberCounts(
            known=False, note=f"no state store at {path}; pass --state-dir where it is reachable"
        )
    try:
        with SqliteLedgerStore(path) as store:
            counts = {name: store.count_entries(name, tagged=True) for name in exports}
    except StateError as error:
        return MemberCounts(known=False, note=f"the state store cannot be read: {error}")
    return MemberCounts(known=True, note=f"the state store at {path}", counts=counts)


def configured_members(
    settings: DaemonSettings,
    exports: Iterable[str],
    *,
    environ: Mapping[str, str] | None = None,
    credentials_directory: str | None = None,
) -> MemberCounts:
    """The tagged ledger entries of each of ``exports`` in the store ``settings.state`` names.

    SQLite: :func:`ledger_members` of ``settings.state_dir``. PostgreSQL: the
    shared store, its DSN resolved from ``environ`` and ``credentials_directory``
    (defaults: ``os.environ`` and its ``$CREDENTIALS_DIRECTORY``); counts are
    unknown, with a one-line, secret-free note, when it cannot be opened or read.
    """
    if not settings.state.shared:
        return ledger_members(settings.state_dir, exports)
    try:
        with open_configured_store(
            settings, environ=environ, credentials_directory=credentials_directory
        ) as store:
            counts = {name: store.count_entries(name, tagged=True) for name in exports}
            location = store.location
    except StateError as error:
        return MemberCounts(known=False, note=f"the state store cannot be read: {error}")
    return MemberCounts(known=True, note=f"the state store at {location}", counts=counts)
