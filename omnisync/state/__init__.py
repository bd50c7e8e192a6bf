"""The state store: ledger, in-flight batches and run history (see ``store.LedgerStore``)."""

from omnisync.inflight import InflightItem
from omnisync.state.sqlite import STATE_FILENAME, SqliteLedgerStore, open_state_store, state_path
from omnisync.state.store import (
    InflightBatch,
    LedgerEntry,
    LedgerStore,
    RunRecord,
    RunStatus,
    StateError,
    StateSchemaTooNew,
)

__all__ = [
    "STATE_FILENAME",
    "InflightBatch",
    "InflightItem",
    "LedgerEntry",
    "LedgerStore",
    "RunRecord",
    "RunStatus",
    "SqliteLedgerStore",
    "StateError",
    "StateSchemaTooNew",
    "open_state_store",
    "state_path",
]
