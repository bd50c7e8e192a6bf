"""Members per export from the state store, read without creating it. The state shell.

``omnisync diff`` costs a change by the members each export's ledger holds
(its tagged entries, :meth:`~omnisync.state.LedgerStore.count_entries`). A
state directory without a state database is *unknown*, not empty: nothing
is created, and the review says that counts are unknown. So is a shared
(PostgreSQL) store that cannot be opened: the note names the store, never
its DSN or password.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from omnisync.config.model import DaemonSettings
from omnisync.review.model import MemberCounts
from omnisync.state import StateError, state_path
from omnisync.state.opening import open_existing_store


def ledger_members(
    settings: DaemonSettings, exports: Iterable[str], *, environ: Mapping[str, str] | None = None
) -> MemberCounts:
    """The tagged ledger entries of each of ``exports`` in the store ``settings.state`` names.

    SQLite: the file under ``settings.state_dir``, if there is one. PostgreSQL:
    the shared store, its DSN resolved from ``environ`` (default ``os.environ``)
    and its ``$CREDENTIALS_DIRECTORY``. Counts are unknown, with a one-line,
    secret-free note, when there is no store or it cannot be opened or read.
    """
    try:
        store = open_existing_store(settings, environ=environ)
        if store is None:
            return MemberCounts(
                known=False,
                note=f"no state store at {state_path(settings.state_dir)};"
                " pass --state-dir where it is reachable",
            )
        with store:
            counts = {name: store.count_entries(name, tagged=True) for name in exports}
            location = store.location
    except StateError as error:
        return MemberCounts(known=False, note=f"the state store cannot be read: {error}")
    return MemberCounts(known=True, note=f"the state store at {location}", counts=counts)
