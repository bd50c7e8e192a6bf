"""The state store: ledger, in-flight batches and run history (see ``sql_store.LedgerStore``)."""

from omnisync.inflight import InflightItem
from omnisync.state.sql_store import LedgerStore
from omnisync.state.sqlite import SqliteLedgerStore, open_state_store, state_path
from omnisync.state.store import (
    InflightBatch,
    LedgerEntry,
    RunRecord,
    StateError,
    StateSchemaTooNew,
)

__all__ = [
    "InflightBatch",
    "InflightItem",
    "LedgerEntry",
    "LedgerStore",
    "RunRecord",
    "SqliteLedgerStore",
    "StateError",
    "StateSchemaTooNew",
    "open_state_store",
    "state_path",
]
