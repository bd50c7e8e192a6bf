"""OmnisendClient against the real emulator on loopback, every exchange contract-checked."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

import pytest

from omnisync.contact import ContactWrite, EmailConsent
from omnisync.omnisend.errors import ApiError
from omnisync.omnisend.retry import RetryPolicy
from tests.omnisend.conftest import API_KEY, Connection, encoded, people, settled_log


def test_a_batch_is_created_followed_and_its_contacts_stored(
    connect: Callable[..., Connection],
) -> None:
    connection = connect()
    client, emulator = connection.client, connection.emulator
    writes = people(100, consent=True)
    batch_id = client.create_batch(encoded(writes))
    emails = [write.email for write in writes]
    outcomes = list(client.wait_for_batches({batch_id: emails}, poll_interval=0.5))
    assert len(outcomes) == 1
    assert outcomes[0].status == "finished"
    assert outcomes[0].accepted == frozenset(emails)
    assert outcomes[0].failed == ()
    assert emulator.contact_count() == 100
    stored = client.get_contact(emails[7])
    assert stored is not None
    assert stored["firstName"] == "First7" and stored["customProperties"]["loyalty_tier"] == "gold"
    assert stored["status"] == "subscribed"
    assert client.get_contact("nobody@example.com") is None
    assert emulator.welcome_messages() == []
    assert connection.transport.exchanges >= 3 and connection.transport.items_checked == 100


def test_one_listing_call_covers_every_batch_in_flight(connect: Callable[..., Connection]) -> None:
    connection = connect()
    client, emulator = connection.client, connection.emulator
    pending = {}
    for start in range(0, 500, 100):
        writes = people(100, start=start)
        pending[client.create_batch(encoded(writes))] = [write.email for write in writes]
    emulator.drain()
    before = len(emulator.request_log())
    outcomes = client.poll_batches(pending)
    assert {outcome.batch_id for outcome in outcomes} == set(pending)
    calls = [record.endpoint for record in emulator.request_log()[before:]]
    assert calls == ["GET /batches"]


def test_item_failures_carry_omnisends_field_messages(connect: Callable[..., Connection]) -> None:
    connection = connect()
    client, emulator = connection.client, connection.emulator
    writes = people(20)
    refused = {writes[3].email, writes[11].email}
    emulator.set_faults(failing_emails=frozenset(refused))
    batch_id = client.create_batch(encoded(writes))
    [outcome] = client.wait_for_batches({batch_id: [w.email for w in writes]}, poll_interval=0.5)
    assert outcome.status == "finished"
    assert {failure.email for failure in outcome.failed} == refused
    assert outcome.accepted == frozenset(w.email for w in writes) - refused
    for failure in outcome.failed:
        assert failure.response_code == 400
        assert failure.problems, "Omnisend's errors[] are kept"
        assert failure.problems[0].field == "identifiers[0].id"
        assert failure.problems[0].message


def test_a_stopped_batch_leaves_its_unprocessed_contacts_out(
    connect: Callable[..., Connection],
) -> None:
    connection = connect()
    client, emulator = connection.client, connection.emulator
    writes = people(30)
    emulator.set_faults(
        failing_emails=frozenset({writes[0].email, writes[1].email}), stop_after_errors=2
    )
    batch_id = client.create_batch(encoded(writes))
    [outcome] = client.wait_for_batches({batch_id: [w.email for w in writes]}, poll_interval=0.5)
    assert outcome.status == "stopped"
    assert len(outcome.failed) == 2
    processed = outcome.accepted | {failure.email for failure in outcome.failed}
    assert len(processed) < 30  # the rest was never processed and is in neither set


def test_a_batch_omnisend_does_not_know_is_reported_stopped(
    connect: Callable[..., Connection],
) -> None:
    connection = connect()
    [outcome] = connection.client.poll_batches({"0123456789abcdef01234567": ["x@example.com"]})
    assert outcome.status == "stopped" and outcome.accepted == frozenset()


def test_a_pre_existing_contact_keeps_its_tags_and_its_unsubscription(
    connect: Callable[..., Connection],
) -> None:
    connection = connect()
    client, emulator = connection.client, connection.emulator
    emulator.seed_contact(
        "kept@example.com",
        tags=["newsletter", "vip-2019"],
        status="unsubscribed",
        status_changed_at="2025-06-01T00:00:00Z",
    )
    # An existing contact gets no status from the engine; even a stale
    # subscription recorded before the unsubscribe must not win.
    writes = [
        ContactWrite(email="kept@example.com", fields={"firstName": "Kept"}),
        ContactWrite(
            email="kept@example.com",
            consent=EmailConsent(status="subscribed", changed_at="2024-01-01T00:00:00Z"),
        ),
    ]
    for write in writes:
        batch_id = client.create_batch(encoded([write]))
        list(client.wait_for_batches({batch_id: [write.email]}, poll_interval=0.5))
    client.add_tag("segment-vip", ["kept@example.com"])
    emulator.drain()
    contact = emulator.contact("kept@example.com")
    assert contact is not None
    assert contact["firstName"] == "Kept"
    assert sorted(contact["tags"]) == ["newsletter", "segment-vip", "vip-2019"]
    assert contact["status"] == "unsubscribed"
    assert emulator.welcome_messages() == []
    client.remove_tag("segment-vip", ["kept@example.com"])
    emulator.drain()
    assert sorted(emulator.contact("kept@example.com")["tags"]) == ["newsletter", "vip-2019"]  # type: ignore[index]


def test_a_429_storm_is_ridden_out_and_nothing_is_sent_before_retry_after(
    connect: Callable[..., Connection],
) -> None:
    connection = connect(scale=40.0)
    client, emulator = connection.client, connection.emulator
    emulator.set_faults(force_429_count=6, force_429_retry_after=3)
    writes = people(10)
    batch_id = client.create_batch(encoded(writes))
    client.add_tag("storm", ["person000000@example.com"])
    log = settled_log(emulator, count=8)  # 6 forced 429s, the batch, the tags call
    limited = [record for record in log if record.status == 429]
    assert len(limited) == 6
    # The emulator stamps a record when it has answered; a request that waited
    # retryAfter from the moment the 429 arrived is stamped at least that much
    # later (less the instant between the answer and its stamp).
    for previous, following in itertools.pairwise(log):
        if previous.status == 429:
            assert following.at - previous.at >= 3.0 - 0.05, (previous, following)
    assert batch_id in {batch["batchID"] for batch in emulator.batches()}


def test_503s_and_dropped_connections_are_retried_to_success(
    connect: Callable[..., Connection],
) -> None:
    connection = connect(retry_policy=RetryPolicy(max_attempts=12, base_delay=0.2, max_delay=2.0))
    client, emulator = connection.client, connection.emulator
    emulator.set_faults(error_rate_503=0.3, drop_rate=0.2, latency=0.5, seed=4)
    pending = {}
    for start in range(0, 300, 50):
        writes = people(50, start=start)
        pending[client.create_batch(encoded(writes))] = [write.email for write in writes]
    outcomes = list(client.wait_for_batches(pending, poll_interval=0.5))
    client.add_tag("faulty", [email for emails in pending.values() for email in emails][:250])
    counts = emulator.counts()["by_endpoint"]
    assert counts["POST /batches"].get("503", 0) + counts["GET /batches"].get("503", 0) > 0
    assert sum(statuses.get("dropped", 0) for statuses in counts.values()) > 0
    assert {outcome.batch_id for outcome in outcomes} == set(pending)
    assert all(outcome.accepted == frozenset(pending[outcome.batch_id]) for outcome in outcomes)
    emulator.set_faults(error_rate_503=0.0, drop_rate=0.0, latency=0.0)
    emulator.drain()
    assert emulator.contact_count() == 300


def test_a_wrong_key_stops_at_once_with_a_clear_error(
    connect: Callable[..., Connection], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_key = "omni-wrong-key-SECRET-0000"
    connection = connect(api_key=wrong_key)
    with pytest.raises(ApiError) as caught:
        connection.client.create_batch(encoded(people(5)))
    assert caught.value.status == 401 and caught.value.aborts_run
    message = str(caught.value)
    assert "the API key is wrong or revoked" in message
    assert "urn:omnisend:request:" in message  # the trace id
    assert wrong_key not in message and API_KEY not in message
    assert [record.status for record in settled_log(connection.emulator, count=1)] == [401]
    assert all(wrong_key not in record.getMessage() for record in caplog.records)


def test_a_contact_lookup_leaves_no_full_email_in_any_log_line(
    connect: Callable[..., Connection], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connection = connect()
    connection.client.get_contact("olena.kovalenko@example.com")
    lines = [record.getMessage() for record in caplog.records]
    assert any("HTTP Request: GET" in line for line in lines), "httpx logged the request"
    assert all("kovalenko" not in line for line in lines)
