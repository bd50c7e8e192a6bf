"""LedgerRecorder around batch creation: which failures forget the batch's intent."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnisync.clock import FakeClock
from omnisync.engine.recorder import LedgerRecorder
from omnisync.omnisend.errors import (
    ApiError,
    OmnisendError,
    RequestCancelled,
    TransportError,
    UnexpectedResponse,
)
from omnisync.state import InflightItem, SqliteLedgerStore


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        # Nothing was sent: the request was cancelled (a stop) while it waited.
        (RequestCancelled("create a batch of 2 contact(s)"), False),
        # Omnisend answered a 4xx: it processed nothing.
        (ApiError("create a batch of 2 contact(s)", status=400), False),
        # A 5xx or a 408 may come after the batch was made (docs/omnisend.md): kept.
        (ApiError("create a batch of 2 contact(s)", status=503), True),
        (ApiError("create a batch of 2 contact(s)", status=408), True),
        # Answered in the end, but an earlier attempt was not: that one may have been
        # processed (a dropped answer), so the batch may exist.
        (ApiError("create a batch of 2 contact(s)", status=400, after_unanswered=True), True),
        # No answer: Omnisend may have created the batch; the next run resolves it.
        (TransportError("create a batch of 2 contact(s)", "timed out", attempts=8), True),
        # No connection was ever made: nothing reached Omnisend.
        (
            TransportError(
                "create a batch of 2 contact(s)", "refused", attempts=8, maybe_processed=False
            ),
            False,
        ),
        # A 2xx without a batch id: it was created, under an id we do not know.
        (UnexpectedResponse("create a batch of 2 contact(s)", "no batchID"), True),
    ],
)
def test_a_failed_creation_keeps_the_intent_only_when_the_batch_may_exist(
    tmp_path: Path, error: OmnisendError, kept: bool
) -> None:
    with SqliteLedgerStore(tmp_path / "omnisync.sqlite3") as store:
        recorder = LedgerRecorder(store, "vip", clock=FakeClock(), on_change=lambda: None)
        recorder.expect("a@x.io", 1, then_tag=True)
        recorder.expect("b@x.io", 2, then_tag=False)
        token = recorder.batch_sending(("a@x.io", "b@x.io"))
        [intent] = store.intents("vip")
        assert intent.items == (InflightItem("a@x.io", 1, True), InflightItem("b@x.io", 2, False))
        recorder.batch_not_created(token, error)
        assert [i.batch_id for i in store.intents("vip")] == ([token] if kept else [])
        assert store.inflight_batches("vip") == []


def test_batches_are_recorded_and_acknowledged_as_omnisend_answered(
    tmp_path: Path,
) -> None:
    with SqliteLedgerStore(tmp_path / "omnisync.sqlite3") as store:
        recorder = LedgerRecorder(store, "vip", clock=FakeClock(), on_change=lambda: None)
        first = ("a@x.io", "b@x.io")
        second = ("c@x.io", "d@x.io")
        for batch, fingerprints in ((first, [1, 2]), (second, [3, 4])):
            for email, fingerprint, then_tag in zip(
                batch, fingerprints, [True, False], strict=True
            ):
                recorder.expect(email, fingerprint, then_tag=then_tag)
        first_token = recorder.batch_sending(first)
        second_token = recorder.batch_sending(second)
        # Both recorded at one (fake) time: keyed by token, not in list order.
        assert {intent.batch_id: intent.items for intent in store.intents("vip")} == {
            first_token: (InflightItem("a@x.io", 1, True), InflightItem("b@x.io", 2, False)),
            second_token: (InflightItem("c@x.io", 3, True), InflightItem("d@x.io", 4, False)),
        }
        recorder.batch_created(first_token, "batch-1", first)
        recorder.batch_created(second_token, "batch-2", second)
        # One poll round: part of a batch accepted (only that part enters the
        # ledger) and a whole batch accepted.
        recorder.upserts_acknowledged((("batch-1", ("b@x.io",)), ("batch-2", ("d@x.io", "c@x.io"))))
        assert [(entry.email, entry.fingerprint) for entry in store.entries("vip")] == [
            ("b@x.io", 2),
            ("c@x.io", 3),
            ("d@x.io", 4),
        ]
        [left] = store.inflight_batches("vip")
        assert (left.batch_id, left.emails) == ("batch-1", ("a@x.io",))
        assert (recorder.upserted, recorder.tags_after_upsert) == (3, 1)


def test_a_renamed_contact_is_ready_for_the_new_tag_once_the_old_one_is_removed(
    tmp_path: Path,
) -> None:
    with SqliteLedgerStore(tmp_path / "omnisync.sqlite3") as store:
        recorder = LedgerRecorder(store, "vip", clock=FakeClock(), on_change=lambda: None)
        emails = ("a@x.io", "b@x.io")
        for fingerprint, email in enumerate(emails):
            recorder.expect(email, fingerprint, then_tag=False)
        recorder.batch_created(recorder.batch_sending(emails), "batch-1", emails)
        recorder.upserts_acknowledged((("batch-1", emails),))
        recorder.tags_added("old", emails)
        for email in emails:
            recorder.renaming(email, "old")
        assert recorder.renamed() == []
        recorder.tags_removed("old", ("a@x.io",))
        recorder.removals_not_sent("old", ("b@x.io",))  # a stop: "old" stays on b
        assert [entry.tag for entry in store.entries("vip")] == [None, "old"]
        assert recorder.renamed() == ["a@x.io"]
        assert recorder.renamed() == []  # handed out once
