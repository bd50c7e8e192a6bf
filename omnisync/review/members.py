"""Members per export from the state store, read without creating it. The state shell."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from omnisync.config.model import DaemonSettings
from omnisync.review.model import MemberCounts
from omnisync.state import StateError, state_path
from omnisync.state.opening import open_existing_store


def ledger_members(
    settings: DaemonSettings, exports: Iterable[str], *, environ: Mapping[str, str] | None = None
) -> MemberCounts:
    """The tagged ledger entries of each of ``exports`` in the store ``settings.state`` names
    (a PostgreSQL DSN resolved from ``environ``, default ``os.environ``). Counts are
    *unknown*, not zero, with a one-line, secret-free note, when there is no store (none is
    created) or it cannot be opened or read.
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
