"""Runs the store contract (``contract.py``) against every back-end in ``backends.py``."""

from tests.state.contract import LedgerStoreContract


class TestLedgerStore(LedgerStoreContract):
    pass
