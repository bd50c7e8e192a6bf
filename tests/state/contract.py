"""The contract every :class:`omnisync.state.LedgerStore` implementation passes.

Collected through ``test_contract.py``; the ``backend`` and ``store``
fixtures (``conftest.py``) are parametrised over ``backends.BACKENDS``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta

import pytest

from omnisync.fingerprint import NEVER_A_FINGERPRINT
from omnisync.masking import mask_email
from omnisync.state import (
    InflightItem,
    LedgerEntry,
    LedgerStore,
    StateError,
    StateSchemaTooNew,
)
from omnisync.state.migrations import SCHEMA_VERSION
from tests.state.backends import StoreBackend
from tests.state.seeding import deliver

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def items(*emails: str, fingerprint: int = 1, then_tag: bool = True) -> list[InflightItem]:
    return [InflightItem(email, fingerprint, then_tag) for email in emails]


def put_in_flight(
    store: LedgerStore,
    export: str,
    batch_id: str,
    batch_items: list[InflightItem],
    *,
    now: datetime,
) -> None:
    """Put a batch in flight as a run does: its intent, then the id Omnisend gave it."""
    store.record_intent(export, f"intent-{batch_id}", batch_items, now=now)
    store.record_created(export, f"intent-{batch_id}", batch_id, now=now)


def run_child(backend: StoreBackend, body: str) -> subprocess.Popen[str]:
    code = backend.child_open_code() + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )


class LedgerStoreContract:
    # -- ledger ------------------------------------------------------------------

    def test_an_empty_store_knows_nothing(self, store: LedgerStore) -> None:
        assert store.entry("vip", "a@example.com") is None
        assert store.entries("vip") == []
        assert store.count_entries("vip") == 0
        assert store.inflight_batches("vip") == []
        assert store.runs() == []
        assert store.run(1) is None

    def test_exports_are_isolated(self, store: LedgerStore) -> None:
        deliver(store, "vip", [("a@example.com", 1, "vip")], now=NOW)
        deliver(store, "news", [("a@example.com", 9, "news")], now=NOW)
        assert store.entry("vip", "a@example.com") == LedgerEntry(
            "vip", "a@example.com", 1, "vip", "2026-03-01T12:00:00.000Z"
        )
        assert store.entry("news", "a@example.com") is not None
        assert store.retarget("vip", "brand-a", now=NOW) == 0
        assert store.retarget("vip", "brand-b", now=NOW) == 1
        assert store.count_entries("vip") == 0
        assert store.count_entries("news") == 1

    def test_unicode_addresses_are_keys_as_given(self, store: LedgerStore) -> None:
        emails = ["олена@приклад.укр", "zoë@example.com", "ząb@example.pl"]
        deliver(store, "vip", [(email, 5, None) for email in emails], now=NOW)
        assert [entry.email for entry in store.entries("vip")] == sorted(emails)
        assert store.entry("vip", "олена@приклад.укр") is not None

    def test_count_entries_filters_on_the_tag(self, store: LedgerStore) -> None:
        deliver(
            store, "vip", [("a@x.io", 1, "vip"), ("b@x.io", 1, None), ("c@x.io", 1, "vip")], now=NOW
        )
        assert store.count_entries("vip") == 3
        assert store.count_entries("vip", tagged=True) == 2

    def test_timestamps_must_carry_a_time_zone(self, store: LedgerStore) -> None:
        with pytest.raises(ValueError, match="timezone"):
            store.record_intent("vip", "token", items("a@x.io"), now=datetime(2026, 1, 1))

    # -- in-flight batches and acknowledgement --------------------------------------

    def test_inflight_batches_are_grouped_oldest_first(self, store: LedgerStore) -> None:
        put_in_flight(store, "vip", "batch-2", items("c@x.io"), now=LATER)
        put_in_flight(
            store,
            "vip",
            "batch-1",
            [*items("b@x.io", "a@x.io"), *items("d@x.io", then_tag=False)],
            now=NOW,
        )
        put_in_flight(store, "news", "batch-9", items("z@x.io"), now=NOW)
        batches = store.inflight_batches("vip")
        assert [batch.batch_id for batch in batches] == ["batch-1", "batch-2"]
        assert batches[0].created_at == "2026-03-01T12:00:00.000Z"
        assert batches[0].emails == ("a@x.io", "b@x.io", "d@x.io")
        assert batches[0].items[2] == InflightItem("d@x.io", 1, False)
        assert [batch.batch_id for batch in store.inflight_batches("news")] == ["batch-9"]

    def test_acknowledge_moves_acknowledged_items_into_the_ledger(self, store: LedgerStore) -> None:
        deliver(store, "vip", [("changed@x.io", 10, "vip")], now=NOW)
        put_in_flight(
            store,
            "vip",
            "batch-1",
            [
                InflightItem("new@x.io", 21, True),
                InflightItem("changed@x.io", 22, True),
                InflightItem("failed@x.io", 23, True),
            ],
            now=NOW,
        )
        written = store.acknowledge_batches(
            "vip", [("batch-1", {"new@x.io", "changed@x.io", "stranger@x.io"})], now=LATER
        )
        assert written == 2
        new = store.entry("vip", "new@x.io")
        changed = store.entry("vip", "changed@x.io")
        assert new is not None and (new.fingerprint, new.tag) == (21, None)
        # An existing entry keeps its tag: only mark_tagged records tags.
        assert changed is not None and (changed.fingerprint, changed.tag) == (22, "vip")
        assert changed.updated_at == "2026-03-01T12:05:00.000Z"
        assert store.entry("vip", "stranger@x.io") is None
        [left] = store.inflight_batches("vip")
        assert left.emails == ("failed@x.io",)

    def test_acknowledge_only_touches_its_own_batch_and_export(self, store: LedgerStore) -> None:
        put_in_flight(store, "vip", "batch-1", items("a@x.io", fingerprint=1), now=NOW)
        put_in_flight(store, "vip", "batch-2", items("a@x.io", fingerprint=2), now=NOW)
        put_in_flight(store, "news", "batch-1", items("a@x.io", fingerprint=3), now=NOW)
        assert store.acknowledge_batches("vip", [("batch-2", ["a@x.io"])], now=NOW) == 1
        entry = store.entry("vip", "a@x.io")
        assert entry is not None and entry.fingerprint == 2
        assert store.entry("news", "a@x.io") is None
        assert [batch.batch_id for batch in store.inflight_batches("vip")] == ["batch-1"]
        assert store.acknowledge_batches("vip", [("batch-404", ["a@x.io"])], now=NOW) == 0
        assert store.acknowledge_batches("vip", [("batch-1", [])], now=NOW) == 0

    def test_release_forgets_items_without_recording_them(self, store: LedgerStore) -> None:
        put_in_flight(store, "vip", "batch-1", items("a@x.io", "b@x.io", "c@x.io"), now=NOW)
        put_in_flight(store, "vip", "batch-2", items("d@x.io"), now=NOW)
        assert store.release("vip", "batch-1", ["a@x.io"]) == 1
        assert store.inflight_batches("vip")[0].emails == ("b@x.io", "c@x.io")
        assert store.release("vip", "batch-1") == 2
        assert [batch.batch_id for batch in store.inflight_batches("vip")] == ["batch-2"]
        assert store.count_entries("vip") == 0

    def test_moving_to_another_brand_forgets_the_old_brands_ledger(
        self, store: LedgerStore
    ) -> None:
        deliver(store, "vip", [("a@x.io", 1, "vip"), ("b@x.io", 2, None)], now=NOW)
        deliver(store, "news", [("a@x.io", 3, "news")], now=NOW)
        put_in_flight(store, "vip", "batch-1", items("c@x.io"), now=NOW)
        # No brand recorded yet (a store from before brands): the ledger is kept.
        assert store.retarget("vip", "https://api brand-a", now=NOW) == 0
        assert store.count_entries("vip") == 2
        assert store.retarget("vip", "https://api brand-a", now=NOW) == 0
        assert store.retarget("vip", "https://api brand-b", now=NOW) == 2
        assert (store.count_entries("vip"), store.inflight_batches("vip")) == (0, [])
        assert store.count_entries("news") == 1  # other exports are untouched
        assert store.retarget("vip", "https://api brand-b", now=NOW) == 0

    def test_an_intent_becomes_in_flight_once_the_batch_is_created(
        self, store: LedgerStore
    ) -> None:
        extremes = [
            InflightItem("a@x.io", -(2**63), True),
            InflightItem("b@x.io", 2**63 - 1, False),
        ]
        store.record_intent("vip", "token-1", extremes, now=NOW)
        store.record_intent("vip", "token-2", items("c@x.io"), now=LATER)
        store.record_intent("news", "token-1", items("z@x.io"), now=NOW)
        intents = store.intents("vip")
        assert [(i.batch_id, i.items) for i in intents] == [
            ("token-1", tuple(extremes)),
            ("token-2", (InflightItem("c@x.io", 1, True),)),
        ]
        assert intents[0].created_at == "2026-03-01T12:00:00.000Z"
        assert store.inflight_batches("vip") == []
        assert store.record_created("vip", "token-1", "batch-77", now=LATER) == 2
        [batch] = store.inflight_batches("vip")
        assert (batch.batch_id, batch.items) == ("batch-77", tuple(extremes))
        assert batch.created_at == "2026-03-01T12:05:00.000Z"
        assert [i.batch_id for i in store.intents("vip")] == ["token-2"]
        assert [i.batch_id for i in store.intents("news")] == ["token-1"]
        assert store.record_created("vip", "token-404", "batch-78", now=LATER) == 0
        assert store.acknowledge_batches("vip", [("batch-77", ["a@x.io"])], now=NOW) == 1
        entry = store.entry("vip", "a@x.io")
        assert entry is not None and entry.fingerprint == -(2**63)

    def test_an_intent_keeps_one_item_per_email_the_later_winning(self, store: LedgerStore) -> None:
        sent = [
            InflightItem("a@x.io", -(2**63), True),
            InflightItem("b@x.io", 2**63 - 1, False),
            InflightItem("a@x.io", 5, False),  # a later item for an e-mail wins
        ]
        store.record_intent("vip", "token-1", sent, now=NOW)
        store.record_intent("vip", "token-2", tuple(sent), now=NOW)
        listed, as_tuple = store.intents("vip")
        assert (
            listed.items
            == as_tuple.items
            == (
                InflightItem("a@x.io", 5, False),
                InflightItem("b@x.io", 2**63 - 1, False),
            )
        )
        assert store.record_created("vip", "token-1", "batch-1", now=LATER) == 2
        assert store.acknowledge_batches("vip", [("batch-1", None)], now=LATER) == 2
        entry = store.entry("vip", "b@x.io")
        assert entry is not None and entry.fingerprint == 2**63 - 1

    def test_acknowledging_without_emails_moves_the_whole_batch(self, store: LedgerStore) -> None:
        put_in_flight(store, "vip", "batch-1", items("a@x.io", "b@x.io", fingerprint=7), now=NOW)
        put_in_flight(store, "vip", "batch-2", items("c@x.io"), now=NOW)
        deliver(store, "vip", [("b@x.io", 1, "vip")], now=NOW)
        assert store.acknowledge_batches("vip", [("batch-1", None)], now=LATER) == 2
        assert [(e.email, e.fingerprint, e.tag) for e in store.entries("vip")] == [
            ("a@x.io", 7, None),
            ("b@x.io", 7, "vip"),  # an existing entry keeps its tag
        ]
        assert [batch.batch_id for batch in store.inflight_batches("vip")] == ["batch-2"]
        assert store.acknowledge_batches("vip", [("batch-1", None)], now=LATER) == 0
        assert store.acknowledge_batches("vip", [("batch-404", None)], now=LATER) == 0

    def test_acknowledging_several_batches_at_once_is_each_acknowledged(
        self, store: LedgerStore
    ) -> None:
        put_in_flight(store, "vip", "batch-1", items("a@x.io", "b@x.io", fingerprint=1), now=NOW)
        put_in_flight(store, "vip", "batch-2", items("c@x.io", "d@x.io", fingerprint=2), now=NOW)
        put_in_flight(store, "vip", "batch-3", items("e@x.io", fingerprint=3), now=NOW)
        put_in_flight(store, "news", "batch-1", items("a@x.io", fingerprint=4), now=NOW)
        written = store.acknowledge_batches(
            "vip",
            [("batch-1", None), ("batch-2", ["d@x.io"]), ("batch-404", None), ("batch-3", [])],
            now=LATER,
        )
        assert written == 3
        assert [(e.email, e.fingerprint) for e in store.entries("vip")] == [
            ("a@x.io", 1),
            ("b@x.io", 1),
            ("d@x.io", 2),
        ]
        assert [(b.batch_id, b.emails) for b in store.inflight_batches("vip")] == [
            ("batch-2", ("c@x.io",)),
            ("batch-3", ("e@x.io",)),
        ]
        assert store.entries("news") == []
        assert store.acknowledge_batches("vip", [], now=LATER) == 0

    def test_an_intent_can_be_released(self, store: LedgerStore) -> None:
        store.record_intent("vip", "token-1", items("a@x.io"), now=NOW)
        assert store.release_intent("vip", "token-1") == 1
        assert store.release_intent("vip", "token-1") == 0
        assert store.intents("vip") == []
        store.record_intent("vip", "token-2", items("a@x.io"), now=NOW)
        store.retarget("vip", "brand-a", now=NOW)
        store.retarget("vip", "brand-b", now=NOW)
        assert store.intents("vip") == []

    def test_recording_the_same_batch_twice_keeps_one_item_each(self, store: LedgerStore) -> None:
        put_in_flight(store, "vip", "batch-1", items("a@x.io", fingerprint=1), now=NOW)
        put_in_flight(store, "vip", "batch-1", items("a@x.io", fingerprint=5), now=NOW)
        [batch] = store.inflight_batches("vip")
        assert batch.items == (InflightItem("a@x.io", 5, True),)

    # -- tags ------------------------------------------------------------------------

    def test_mark_tagged_and_untagged(self, store: LedgerStore) -> None:
        deliver(
            store,
            "vip",
            [("a@x.io", 1, None), ("b@x.io", 1, "old-tag"), ("c@x.io", 1, None)],
            now=NOW,
        )
        assert store.mark_tagged("vip", "vip", ["a@x.io", "b@x.io", "nobody@x.io"], now=LATER) == 2
        assert [entry.tag for entry in store.entries("vip")] == ["vip", "vip", None]
        # Removing a tag the entry no longer carries (already re-tagged) changes nothing.
        assert store.mark_untagged("vip", "old-tag", ["b@x.io"], now=LATER) == 0
        assert store.mark_untagged("vip", "vip", ["b@x.io"], now=LATER) == 1
        entry = store.entry("vip", "b@x.io")
        # The entry stays, so a returning member costs only a tag call.
        assert entry is not None and entry.tag is None and entry.fingerprint == 1
        assert store.mark_tagged("vip", "vip", [], now=LATER) == 0
        assert store.mark_untagged("vip", "vip", [], now=LATER) == 0

    def test_marked_entries_match_no_fingerprint_and_carry_no_tag(self, store: LedgerStore) -> None:
        deliver(
            store, "vip", [("a@x.io", 1, "vip"), ("b@x.io", 2, "vip"), ("c@x.io", 3, None)], now=NOW
        )
        deliver(store, "news", [("a@x.io", 1, "news")], now=NOW)
        marked = store.mark_for_resend("vip", ["a@x.io", "c@x.io", "nobody@x.io"], now=LATER)
        assert marked == 2
        a, b, c = store.entries("vip")
        assert (a.fingerprint, a.tag) == (NEVER_A_FINGERPRINT, None)
        assert (c.fingerprint, c.tag) == (NEVER_A_FINGERPRINT, None)
        assert a.updated_at == "2026-03-01T12:05:00.000Z"
        # Exactly those: the other entry and the other export's entry are untouched,
        # and nothing was added for an e-mail without an entry.
        assert (b.fingerprint, b.tag, b.updated_at) == (2, "vip", "2026-03-01T12:00:00.000Z")
        assert store.entry("news", "a@x.io") == LedgerEntry(
            "news", "a@x.io", 1, "news", "2026-03-01T12:00:00.000Z"
        )
        assert store.entry("vip", "nobody@x.io") is None
        assert store.count_entries("vip") == 3
        assert store.mark_for_resend("vip", [], now=LATER) == 0

    def test_a_tag_about_to_be_added_is_in_doubt_until_omnisend_accepts_it(
        self, store: LedgerStore
    ) -> None:
        deliver(store, "vip", [("a@x.io", 1, None), ("b@x.io", 1, "vip")], now=NOW)
        deliver(store, "news", [("a@x.io", 1, None)], now=NOW)
        assert not any(entry.tag_in_doubt for entry in store.entries("vip"))
        sending = ["a@x.io", "b@x.io", "nobody@x.io"]
        assert store.mark_tag_in_doubt("vip", "vip", sending, adding=True, now=LATER) == 2
        # Maybe on: recorded as the tag, in doubt, before the call leaves.
        assert [(entry.tag, entry.tag_in_doubt) for entry in store.entries("vip")] == [
            ("vip", True),
            ("vip", True),
        ]
        assert store.entry("news", "a@x.io") == LedgerEntry(
            "news", "a@x.io", 1, None, "2026-03-01T12:00:00.000Z", False
        )
        assert store.mark_tagged("vip", "vip", ["a@x.io"], now=LATER) == 1
        assert store.entry("vip", "a@x.io") == LedgerEntry(
            "vip", "a@x.io", 1, "vip", "2026-03-01T12:05:00.000Z", False
        )
        # No answer recorded (a lost answer, a kill): the doubt stays for the next diff.
        b = store.entry("vip", "b@x.io")
        assert b is not None and (b.tag, b.tag_in_doubt) == ("vip", True)
        assert store.mark_tag_in_doubt("vip", "vip", [], adding=True, now=LATER) == 0

    def test_a_tag_about_to_be_removed_is_in_doubt_until_omnisend_accepts_it(
        self, store: LedgerStore
    ) -> None:
        deliver(
            store,
            "vip",
            [("a@x.io", 1, "vip"), ("b@x.io", 1, "old"), ("c@x.io", 1, None), ("d@x.io", 1, "vip")],
            now=NOW,
        )
        removing = ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "nobody@x.io"]
        # Only the entries carrying that tag: one with another tag or none is not in doubt.
        assert store.mark_tag_in_doubt("vip", "vip", removing, adding=False, now=LATER) == 2
        assert [(entry.tag, entry.tag_in_doubt) for entry in store.entries("vip")] == [
            ("vip", True),
            ("old", False),
            (None, False),
            ("vip", True),
        ]
        assert store.mark_untagged("vip", "vip", ["a@x.io"], now=LATER) == 1
        a, _, _, d = store.entries("vip")
        assert (a.tag, a.tag_in_doubt) == (None, False)
        assert (d.tag, d.tag_in_doubt) == ("vip", True)  # its call failed: still in doubt
        assert store.count_entries("vip", tagged=True) == 2

    def test_marking_for_resend_keeps_a_doubt_only_with_the_tag(self, store: LedgerStore) -> None:
        deliver(store, "vip", [("a@x.io", 1, "vip"), ("b@x.io", 2, "vip")], now=NOW)
        store.mark_tag_in_doubt("vip", "vip", ["a@x.io", "b@x.io"], adding=False, now=NOW)
        store.mark_for_resend("vip", ["a@x.io"], now=LATER)
        store.mark_for_resend("vip", ["b@x.io"], now=LATER, keep_tag=True)
        a, b = store.entries("vip")
        assert (a.tag, a.tag_in_doubt) == (None, False)
        assert (b.tag, b.tag_in_doubt) == ("vip", True)

    def test_tags_never_leak_across_exports(self, store: LedgerStore) -> None:
        deliver(store, "vip", [("a@x.io", 1, None)], now=NOW)
        deliver(store, "news", [("a@x.io", 1, None)], now=NOW)
        store.mark_tagged("vip", "vip", ["a@x.io"], now=NOW)
        news = store.entry("news", "a@x.io")
        assert news is not None and news.tag is None

    # -- run history -----------------------------------------------------------------

    def test_a_run_is_started_and_finished(self, store: LedgerStore) -> None:
        started = store.start_run("vip", trigger="cli", config_revision="git:abc123", now=NOW)
        assert started.status == "running" and started.ended_at is None
        assert store.run(started.id) == started
        finished = store.finish_run(
            started.id,
            status="partial",
            counts={"upserted": 10, "upsert_failed": 2},
            error=None,
            now=LATER,
        )
        assert finished.status == "partial"
        assert finished.counts == {"upserted": 10, "upsert_failed": 2}
        assert finished.ended_at == "2026-03-01T12:05:00.000Z"
        assert finished.started_at == "2026-03-01T12:00:00.000Z"
        assert (finished.trigger, finished.config_revision) == ("cli", "git:abc123")
        assert store.run(started.id) == finished

    def test_a_run_outside_a_replica_records_none(self, store: LedgerStore) -> None:
        # A fenced store records its lease holder (tests/state/test_leases.py).
        started = store.start_run("vip", trigger="schedule", config_revision="r", now=NOW)
        finished = store.finish_run(
            started.id, status="succeeded", counts={}, error=None, now=LATER
        )
        assert started.replica is None and finished.replica is None
        assert [run.replica for run in store.runs("vip")] == [None]

    def test_errors_in_history_are_masked(self, store: LedgerStore) -> None:
        run = store.start_run("vip", trigger="cli", config_revision="", now=NOW)
        finished = store.finish_run(
            run.id,
            status="failed",
            counts={},
            error="contact olena.kovalenko@example.com was refused (<marko@shop.ua>)",
            now=NOW,
        )
        assert finished.error is not None
        assert "olena.kovalenko@example.com" not in finished.error
        assert "marko@shop.ua" not in finished.error
        assert mask_email("olena.kovalenko@example.com") in finished.error

    def test_a_new_run_marks_a_dead_running_one_interrupted(self, store: LedgerStore) -> None:
        dead = store.start_run("vip", trigger="schedule", config_revision="r1", now=NOW)
        other = store.start_run("news", trigger="schedule", config_revision="r1", now=NOW)
        store.start_run("vip", trigger="cli", config_revision="r1", now=LATER)
        dead_now = store.run(dead.id)
        assert dead_now is not None and dead_now.status == "interrupted"
        assert dead_now.error is not None and "stopped before" in dead_now.error
        other_now = store.run(other.id)
        assert other_now is not None and other_now.status == "running"

    def test_runs_are_listed_newest_first_with_a_limit(self, store: LedgerStore) -> None:
        ids = []
        for index in range(5):
            run = store.start_run(
                "vip" if index % 2 == 0 else "news",
                trigger="cli",
                config_revision="",
                now=NOW + timedelta(seconds=index),
            )
            store.finish_run(run.id, status="succeeded", counts={}, error=None, now=NOW)
            ids.append(run.id)
        assert [run.id for run in store.runs()] == ids[::-1]
        assert [run.id for run in store.runs(limit=2)] == ids[:-3:-1]
        assert [run.id for run in store.runs("vip")] == [ids[4], ids[2], ids[0]]
        assert store.runs("nothing") == []

    def test_finishing_an_unknown_run_is_refused(self, store: LedgerStore) -> None:
        with pytest.raises(StateError, match="no run with id"):
            store.finish_run(999, status="failed", counts={}, error=None, now=NOW)

    # -- lifecycle and persistence -------------------------------------------------------

    def test_state_survives_closing_and_reopening(self, backend: StoreBackend) -> None:
        with backend.open() as first:
            deliver(first, "vip", [("a@x.io", 1, "vip")], now=NOW)
            put_in_flight(first, "vip", "batch-1", items("b@x.io"), now=NOW)
            run = first.start_run("vip", trigger="cli", config_revision="", now=NOW)
        with backend.open() as second:
            assert second.count_entries("vip") == 1
            assert second.inflight_batches("vip")[0].emails == ("b@x.io",)
            assert second.run(run.id) is not None

    def test_a_closed_store_refuses_work(self, backend: StoreBackend) -> None:
        opened = backend.open()
        opened.close()
        opened.close()  # idempotent
        with pytest.raises(StateError, match="closed"):
            opened.count_entries("vip")

    # -- concurrency ---------------------------------------------------------------------

    def test_many_threads_share_one_store(self, store: LedgerStore) -> None:
        errors: list[BaseException] = []

        def worker(number: int) -> None:
            try:
                for batch in range(10):
                    batch_id = f"batch-{number}-{batch}"
                    emails = [f"t{number}-b{batch}-{item}@x.io" for item in range(20)]
                    put_in_flight(store, "vip", batch_id, items(*emails), now=NOW)
                    store.acknowledge_batches("vip", [(batch_id, emails[:15])], now=NOW)
                    store.release("vip", batch_id, emails[15:])
                    store.mark_tagged("vip", "vip", emails[:10], now=NOW)
                    store.count_entries("vip")
                run = store.start_run(
                    f"export-{number}", trigger="cli", config_revision="", now=NOW
                )
                store.finish_run(
                    run.id, status="succeeded", counts={"n": number}, error=None, now=NOW
                )
            except BaseException as error:  # collected and re-raised in the main thread
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(number,)) for number in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert store.count_entries("vip") == 8 * 10 * 15
        assert store.count_entries("vip", tagged=True) == 8 * 10 * 10
        assert store.inflight_batches("vip") == []
        assert sorted(run.counts["n"] for run in store.runs(limit=100)) == list(range(8))

    def test_two_store_instances_write_the_same_storage(self, backend: StoreBackend) -> None:
        first, second = backend.open(), backend.open()
        errors: list[BaseException] = []

        def writer(opened: LedgerStore, prefix: str) -> None:
            try:
                for index in range(50):
                    deliver(opened, "vip", [(f"{prefix}{index}@x.io", index, None)], now=NOW)
            except BaseException as error:
                errors.append(error)

        threads = [
            threading.Thread(target=writer, args=(first, "first")),
            threading.Thread(target=writer, args=(second, "second")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert first.count_entries("vip") == second.count_entries("vip") == 100
        first.close()
        second.close()

    # -- schema versions -----------------------------------------------------------------

    def test_a_fresh_store_is_at_the_current_schema(self, backend: StoreBackend) -> None:
        with backend.open() as opened:
            deliver(opened, "vip", [("a@x.io", 1, None)], now=NOW)
        # Reopening an up-to-date store changes nothing and keeps the data.
        with backend.open() as reopened:
            assert reopened.count_entries("vip") == 1
        assert backend.schema_version() == SCHEMA_VERSION

    def test_an_unversioned_ledger_is_migrated_keeping_its_rows(
        self, backend: StoreBackend
    ) -> None:
        backend.create_legacy_ledger()
        with backend.open() as opened:
            assert opened.entry("vip", "old@example.com") == LedgerEntry(
                "vip", "old@example.com", 7, "vip", "2025-01-01T00:00:00.000Z"
            )
            put_in_flight(opened, "vip", "batch-1", items("new@example.com"), now=NOW)
            assert opened.start_run("vip", trigger="cli", config_revision="", now=NOW).id == 1

    def test_a_version_1_store_is_migrated_keeping_its_state(self, backend: StoreBackend) -> None:
        backend.create_at_version(1)
        with backend.open() as opened:
            assert [entry.email for entry in opened.entries("vip")] == ["old@example.com"]
            [batch] = opened.inflight_batches("vip")
            assert batch.emails == ("flying@example.com",)
            opened.record_intent("vip", "token", items("new@example.com"), now=NOW)
            assert len(opened.intents("vip")) == 1
        assert backend.schema_version() == SCHEMA_VERSION

    def test_a_version_6_store_is_migrated_with_no_tag_in_doubt(
        self, backend: StoreBackend
    ) -> None:
        backend.create_at_version(6)
        with backend.open() as opened:
            [batch] = opened.inflight_batches("vip")
            assert batch.emails == ("flying@example.com",)
            assert opened.entries("vip") == [
                LedgerEntry("vip", "old@example.com", 7, "vip", "2025-01-01T00:00:00.000Z", False)
            ]
            opened.mark_tag_in_doubt("vip", "vip", ["old@example.com"], adding=False, now=NOW)
            entry = opened.entry("vip", "old@example.com")
            assert entry is not None and entry.tag_in_doubt
        assert backend.schema_version() == SCHEMA_VERSION

    def test_a_newer_schema_is_refused_and_left_untouched(self, backend: StoreBackend) -> None:
        with backend.open() as opened:
            deliver(opened, "vip", [("a@x.io", 1, None)], now=NOW)
        backend.force_schema_version(SCHEMA_VERSION + 1)
        before = backend.snapshot()
        with pytest.raises(StateSchemaTooNew) as refused:
            backend.open()
        message = str(refused.value)
        assert f"schema version {SCHEMA_VERSION + 1}" in message
        assert f"({SCHEMA_VERSION})" in message and "Upgrade omnisync" in message
        assert backend.snapshot() == before

    # -- crash safety ----------------------------------------------------------------------

    def test_a_write_killed_mid_transaction_leaves_the_previous_state(
        self, backend: StoreBackend
    ) -> None:
        with backend.open() as opened:
            deliver(opened, "vip", [("keep@x.io", 1, "vip")], now=NOW)
            put_in_flight(opened, "vip", "batch-1", items("first@x.io"), now=NOW)
            put_in_flight(opened, "vip", "batch-2", items("second@x.io"), now=NOW)
        child = run_child(
            backend,
            """
            import time
            from datetime import UTC, datetime

            class Stalling(list):
                def __iter__(self):
                    print("mid-transaction", flush=True)
                    time.sleep(60)
                    return super().__iter__()

            # batch-1 is written in the transaction before batch-2's e-mails stall it.
            batches = [("batch-1", None), ("batch-2", Stalling(["second@x.io"]))]
            store.acknowledge_batches("vip", batches, now=datetime.now(UTC))
            print("committed", flush=True)
            """,
        )
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "mid-transaction", child.stderr.read() if child.stderr else ""
        child.send_signal(signal.SIGKILL)
        child.wait()
        with backend.open() as reopened:
            assert [entry.email for entry in reopened.entries("vip")] == ["keep@x.io"]
            assert [batch.batch_id for batch in reopened.inflight_batches("vip")] == [
                "batch-1",
                "batch-2",
            ]
            # And the store is writable again: no stale lock left behind.
            deliver(reopened, "vip", [("after@x.io", 2, None)], now=NOW)
            assert reopened.count_entries("vip") == 2

    def test_a_process_killed_between_batches_leaves_whole_batches(
        self, backend: StoreBackend
    ) -> None:
        child = run_child(
            backend,
            """
            from datetime import UTC, datetime
            from omnisync.state import InflightItem

            now = datetime.now(UTC)
            for batch in range(100_000):
                emails = [f"b{batch}-{item}@x.io" for item in range(50)]
                # As a run does: the intent first, then the batch Omnisend created.
                batch_items = [InflightItem(e, batch, True) for e in emails]
                store.record_intent("vip", f"intent-{batch}", batch_items, now=now)
                store.record_created("vip", f"intent-{batch}", f"batch-{batch}", now=now)
                store.acknowledge_batches("vip", [(f"batch-{batch}", emails)], now=now)
                store.mark_tagged("vip", "vip", emails[:25], now=now)
                if batch == 20:
                    print("running", flush=True)
            """,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "running"
        child.send_signal(signal.SIGKILL)
        child.wait()
        with backend.open() as reopened:
            entries = reopened.entries("vip")
            inflight = reopened.inflight_batches("vip")
        per_batch: dict[str, list[LedgerEntry]] = {}
        for entry in entries:
            per_batch.setdefault(entry.email.split("-")[0], []).append(entry)
        assert len(per_batch) >= 21
        # Each batch is whole: all 50 acknowledged (tags for 0 or 25), or all still in flight.
        for batch_entries in per_batch.values():
            assert len(batch_entries) == 50
            assert sum(entry.tag is not None for entry in batch_entries) in (0, 25)
        for batch in inflight:
            assert len(batch.items) == 50
            assert not any(email.split("-")[0] in per_batch for email in batch.emails)
