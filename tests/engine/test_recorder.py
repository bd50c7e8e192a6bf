"""LedgerRecorder around batch creation: which failures forget the batch's intent."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnisync.clock import FakeClock
from omnisync.engine.apply import LedgerRecorder
from omnisync.omnisend.errors import (
    OmnisendError,
    RequestCancelled,
    ServerError,
    TransportError,
)
from omnisync.state import InflightItem, SqliteLedgerStore


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        # Nothing was sent: the request was cancelled (a stop) while it waited.
        (RequestCancelled("create a batch of 2 contact(s)"), False),
        # Omnisend answered: it processed nothing.
        (ServerError("create a batch of 2 contact(s)", status=503), False),
        # No answer: Omnisend may have created the batch; the next run resolves it.
        (TransportError("create a batch of 2 contact(s)", "timed out", attempts=8), True),
    ],
)
def test_a_failed_creation_keeps_the_intent_only_when_the_batch_may_exist(
    tmp_path: Path, error: OmnisendError, kept: bool
) -> None:
    with SqliteLedgerStore(tmp_path / "omnisync.sqlite3") as store:
        recorder = LedgerRecorder(store, "vip", clock=FakeClock())
        recorder.expect("a@x.io", 1, then_tag=True)
        recorder.expect("b@x.io", 2, then_tag=False)
        token = recorder.intend(["a@x.io", "b@x.io"])
        [intent] = store.intents("vip")
        assert intent.items == (InflightItem("a@x.io", 1, True), InflightItem("b@x.io", 2, False))
        recorder.not_created(token, error)
        assert [i.batch_id for i in store.intents("vip")] == ([token] if kept else [])
        assert store.inflight_batches("vip") == []
