"""DeliveryPipeline against the real emulator: the issue's acceptance, faults, stops and aborts."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from omnisync.clock import FakeClock
from omnisync.contact import ContactWrite
from omnisync.masking import mask_email
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.errors import ApiError
from omnisync.omnisend.pacing import BrandLimiter
from omnisync.omnisend.pipeline import CREATOR_THREADS, DeliveryPipeline
from omnisync.omnisend.retry import RetryPolicy
from tests.omnisend.conftest import API_KEY, Connection, RecordingListener, people, settled_log

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z]{2,}")


def pipeline_for(
    connection: Connection,
    listener: RecordingListener,
    *,
    stop: threading.Event | None = None,
    **options: object,
) -> DeliveryPipeline:
    return DeliveryPipeline(
        connection.client,
        tag="vip",
        listener=listener,
        stop=stop or threading.Event(),
        clock=connection.clock,
        poll_interval=1.0,
        **options,  # type: ignore[arg-type]
    )


def successes(connection: Connection, endpoint: str) -> int:
    return sum(
        1
        for record in connection.emulator.request_log()
        if record.endpoint == endpoint and record.status is not None and record.status < 300
    )


def test_10000_contacts_in_100_batches_and_40_tag_calls_safely(
    connect: Callable[..., Connection],
) -> None:
    """The issue's acceptance: counts from the emulator's request log, and nothing unsafe."""
    connection = connect()
    emulator = connection.emulator
    emulator.seed_contact(
        "person000000@example.com",
        tags=["newsletter", "vip-2019"],
        status="unsubscribed",
        status_changed_at="2025-02-01T00:00:00Z",
    )
    emulator.seed_contact("person000001@example.com", tags=["wholesale"], status="subscribed")
    writes = [
        # The engine sends no status for contacts that already exist.
        *(ContactWrite(email=w.email, fields=w.fields) for w in people(2)),
        *people(9_998, start=2, consent=True),
    ]
    listener = RecordingListener()
    pipeline = pipeline_for(connection, listener)
    for write in writes:
        assert pipeline.upsert(write, then_tag=True)
    pipeline.finish()
    emulator.drain()

    assert successes(connection, "POST /batches") == 100 == len(listener.created)
    assert successes(connection, "POST /contacts/tags") == 40
    assert len(listener.acknowledged) == len(set(listener.acknowledged)) == 10_000
    assert sorted(listener.added) == sorted(w.email for w in writes)
    listener.assert_each_sent_contact_reported_once()

    contacts = {contact["email"]: contact for contact in emulator.contacts()}
    assert len(contacts) == 10_000
    assert all("vip" in contact["tags"] for contact in contacts.values())
    assert sorted(contacts["person000000@example.com"]["tags"]) == ["newsletter", "vip", "vip-2019"]
    assert sorted(contacts["person000001@example.com"]["tags"]) == ["vip", "wholesale"]
    assert contacts["person000000@example.com"]["status"] == "unsubscribed"
    assert contacts["person000005@example.com"]["status"] == "subscribed"
    assert emulator.welcome_messages() == []
    changed = {change.email for change in emulator.status_changes()}
    assert "person000000@example.com" not in changed and "person000001@example.com" not in changed
    # Tags went out only after the contacts' batches were acknowledged.
    first_ack = listener.events.index("upserts_acknowledged")
    assert "tags_added" not in listener.events[:first_ack]
    assert connection.transport.items_checked == 10_000


def test_per_item_400s_are_reported_per_masked_email_with_field_messages(
    connect: Callable[..., Connection], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="omnisync")
    connection = connect()
    writes = people(600)
    refused = {writes[5].email, writes[250].email, writes[599].email}
    connection.emulator.set_faults(failing_emails=frozenset(refused))
    listener = RecordingListener()
    pipeline = pipeline_for(connection, listener)
    for write in writes:
        pipeline.upsert(write, then_tag=True)
    pipeline.finish()

    assert len(listener.failures) == 3 and len(listener.acknowledged) == 597
    assert {failure.email for failure in listener.failures} == refused
    for failure in listener.failures:
        assert failure.response_code == 400
        assert failure.problems and failure.problems[0].field == "identifiers[0].id"
    assert not refused & set(listener.added), "a refused contact is never tagged"
    assert len(listener.added) == 597
    listener.assert_each_sent_contact_reported_once()
    logged = [record.getMessage() for record in caplog.records]
    for email in refused:
        assert any(mask_email(email) in line for line in logged)
    assert all(not EMAIL.search(line) for line in logged), "a full e-mail address was logged"
    assert all(API_KEY not in line for line in logged)


def test_429_storms_are_ridden_out_with_no_lost_item(
    connect: Callable[..., Connection], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The client believes in far more room than the emulator grants, and the
    # emulator adds a burst of forced 429s on top.
    # (Scale and limits such that a client slowed by a loaded machine still outruns them.)
    connection = connect(scale=100.0, emulator_requests_per_minute=20, emulator_tags_per_minute=3)
    connection.emulator.set_faults(force_429_count=25, force_429_retry_after=2)
    writes = people(2_000)
    listener = RecordingListener()
    pipeline = pipeline_for(connection, listener)
    for write in writes:
        pipeline.upsert(write, then_tag=True)
    pipeline.finish()
    connection.emulator.drain()

    counts = connection.emulator.counts()
    assert counts["rate_limited"] > 25, "the emulator's own limits were hit as well"
    assert len(listener.acknowledged) == 2_000 and len(listener.added) == 2_000
    contacts = connection.emulator.contacts()
    assert len(contacts) == 2_000 and all("vip" in contact["tags"] for contact in contacts)
    assert all(API_KEY not in record.getMessage() for record in caplog.records)


def test_faults_are_retried_to_success(connect: Callable[..., Connection]) -> None:
    connection = connect(retry_policy=RetryPolicy(max_attempts=12, base_delay=0.2, max_delay=2.0))
    connection.emulator.set_faults(
        error_rate_500=0.1,
        error_rate_503=0.15,
        drop_rate=0.15,
        drop_after_processing=True,  # the answer is lost after the work was done
        latency=0.3,
        seed=9,
    )
    writes = people(1_500)
    listener = RecordingListener()
    pipeline = pipeline_for(connection, listener)
    for write in writes:
        pipeline.upsert(write, then_tag=True)
    pipeline.finish()
    connection.emulator.set_faults(error_rate_500=0.0, error_rate_503=0.0, drop_rate=0.0)
    connection.emulator.drain()

    by_endpoint = connection.emulator.counts()["by_endpoint"]
    injected = sum(
        statuses.get(key, 0)
        for statuses in by_endpoint.values()
        for key in ("500", "503", "dropped")
    )
    assert injected >= 10
    assert len(listener.acknowledged) == len(set(listener.acknowledged)) == 1_500
    assert len(listener.added) == 1_500
    contacts = connection.emulator.contacts()
    assert len(contacts) == 1_500 and all("vip" in contact["tags"] for contact in contacts)


def test_a_401_stops_the_pipeline_at_once_with_a_clear_error(
    connect: Callable[..., Connection], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connection = connect(api_key="revoked-key-SECRET-1")
    listener = RecordingListener()
    pipeline = pipeline_for(connection, listener)
    with pytest.raises(ApiError) as caught, pipeline:
        for write in people(5_000):
            pipeline.upsert(write, then_tag=True)
        pipeline.finish()
    assert caught.value.status == 401 and caught.value.aborts_run
    assert "the API key is wrong or revoked" in str(caught.value)
    assert "revoked-key-SECRET-1" not in str(caught.value)
    log = settled_log(connection.emulator, count=1)
    # At most one request per creator thread was already under way.
    assert 1 <= len(log) <= CREATOR_THREADS and all(record.status == 401 for record in log)
    assert listener.created == {}
    assert listener.sending == {}  # each batch announced was then reported not created
    assert all("revoked-key-SECRET-1" not in record.getMessage() for record in caplog.records)


@dataclass
class StoppingListener(RecordingListener):
    """Sets ``stop`` once ``after`` batches were created, as a SIGTERM mid-run would."""

    stop: threading.Event = field(default_factory=threading.Event)
    after: int = 3

    def batch_created(self, provisional_id: str, batch_id: str, emails: tuple[str, ...]) -> None:
        super().batch_created(provisional_id, batch_id, emails)
        if len(self.created) >= self.after:
            self.stop.set()


def test_stop_sends_no_new_batch_and_reports_the_created_ones(
    connect: Callable[..., Connection],
) -> None:
    connection = connect()
    listener = StoppingListener()
    pipeline = pipeline_for(connection, listener, stop=listener.stop)
    queued = 0
    for write in people(5_000):
        if not pipeline.upsert(write, then_tag=True):
            break
        queued += 1
    pipeline.finish()
    assert queued < 5_000
    # The other creators may have been mid-call when the stop came.
    assert 3 <= len(listener.created) <= 2 + CREATOR_THREADS
    assert successes(connection, "POST /batches") == len(listener.created)
    listener.assert_each_sent_contact_reported_once()
    assert len(listener.acknowledged) == len(listener.created) * 100
    assert successes(connection, "POST /contacts/tags") == 0  # no new tags call after a stop


def test_a_creator_waiting_for_a_slot_when_stop_comes_sends_nothing(
    connect: Callable[..., Connection],
) -> None:
    # 4 requests a minute leave batch creation 3 (one is headroom): every creator
    # thread is waiting for the next window when the third batch stops the run.
    # A slower clock than the others: the third batch must be created and the stop
    # set before the first batch's slot comes free a window later (3 s here, not
    # 0.6 s: a loaded machine once took longer, and a fourth batch went out).
    connection = connect(requests_per_minute=4, scale=20.0)
    listener = StoppingListener(after=3)
    pipeline = pipeline_for(connection, listener, stop=listener.stop)
    for write in people(1_000):
        if not pipeline.upsert(write):
            break
    pipeline.finish()
    assert len(listener.created) == 3
    assert successes(connection, "POST /batches") == 3
    assert len(listener.acknowledged) == 300
    listener.assert_each_sent_contact_reported_once()


def test_batches_still_processing_when_the_grace_ends_are_abandoned(
    connect: Callable[..., Connection],
) -> None:
    connection = connect(batch_delay=10_000.0)  # Omnisend never gets to them in time
    stop = threading.Event()
    listener = RecordingListener()
    pipeline = pipeline_for(connection, listener, stop=stop, stop_grace=5.0)
    for write in people(250):
        pipeline.upsert(write)
    settled_log(connection.emulator, count=2)
    stop.set()
    pipeline.finish()
    assert listener.acknowledged == []
    assert sorted(listener.abandoned) == sorted(listener.sent())
    assert len(listener.sent()) >= 200


def test_tag_only_work_adds_and_removes_in_calls_of_250(
    connect: Callable[..., Connection],
) -> None:
    connection = connect()
    emulator = connection.emulator
    for index in range(600):
        emulator.seed_contact(f"old{index:04d}@example.com", tags=["vip"] if index < 300 else [])
    listener = RecordingListener()
    pipeline = pipeline_for(connection, listener)
    for index in range(300):
        pipeline.remove_tag(f"old{index:04d}@example.com")
        pipeline.add_tag(f"old{index + 300:04d}@example.com")
    pipeline.finish()
    emulator.drain()
    assert len(listener.removed) == 300 and len(listener.added) == 300
    assert successes(connection, "DELETE /contacts/tags") == 2
    assert successes(connection, "POST /contacts/tags") == 2
    tagged = {c["email"] for c in emulator.contacts() if "vip" in c["tags"]}
    assert tagged == {f"old{index:04d}@example.com" for index in range(300, 600)}
    assert successes(connection, "POST /batches") == 0


def test_a_batch_omnisend_never_finishes_is_abandoned_at_its_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Omnisend keeps the first batch "inProgress" for ever; it once held the run (and the
    # daemon's export, "running") for ever. Past its deadline it is abandoned as a stop
    # abandons it; the other batch is followed as usual.
    caplog.set_level(logging.WARNING, logger="omnisync")
    clock = FakeClock()
    polls: list[float] = []
    created: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            created.append(f"b-{len(created) + 1}")
            return httpx.Response(201, json={"batchID": created[-1], "totalCount": 1})
        polls.append(clock.now())
        assert len(polls) <= 1_000, "still polling a batch that never finishes"
        listing = [
            {"batchID": batch_id, "status": status, "totalCount": 50, "errorsCount": 0}
            for batch_id, status in (("b-1", "inProgress"), ("b-2", "finished"))
        ]
        return httpx.Response(200, json={"batches": listing})

    client = OmnisendClient(
        "https://omnisend.test/api",
        API_KEY,
        limiter=BrandLimiter(clock=clock),
        clock=clock,
        transport=httpx.MockTransport(handle),
    )
    listener = RecordingListener()
    pipeline = DeliveryPipeline(
        client, "vip", listener=listener, stop=threading.Event(), clock=clock, poll_interval=2.0
    )
    for write in people(150):
        pipeline.upsert(write, then_tag=True)
    pipeline.finish()

    assert sorted(listener.abandoned) == sorted(listener.created["b-1"])
    assert sorted(listener.acknowledged) == sorted(listener.created["b-2"])
    listener.assert_each_sent_contact_reported_once()
    assert sorted(listener.added) == sorted(listener.created["b-2"])  # never tagged blindly
    assert 150 <= len(polls) <= 151  # every 2 s until 300 s after its creation
    [line] = [r.getMessage() for r in caplog.records if "b-1" in r.getMessage()]
    assert "batch b-1 still not done 300 s after its creation" in line


def test_a_stop_during_a_429_pause_leaves_the_waiting_tags_call_unsent(
    connect: Callable[..., Connection],
) -> None:
    # A 120 s pause is 6 s here: a tags call that waited it out would still go out.
    connection = connect(scale=20.0)
    emulator = connection.emulator
    emails = [f"old{index}@example.com" for index in range(10)]
    for email in emails:
        emulator.seed_contact(email, tags=["vip"])
    emulator.set_faults(force_429_count=1, force_429_retry_after=120)
    stop = threading.Event()
    listener = RecordingListener()
    pipeline = pipeline_for(connection, listener, stop=stop)
    for email in emails:
        pipeline.remove_tag(email)
    finishing = threading.Thread(target=pipeline.finish)
    finishing.start()
    settled_log(emulator, count=1)  # the call was answered 429: it waits for the pause
    stop.set()
    finishing.join()
    assert sorted(listener.not_removed) == sorted(emails)
    assert listener.removed == [] and listener.tag_failures == []
    assert [record.status for record in emulator.request_log()] == [429]
    assert all("vip" in contact["tags"] for contact in emulator.contacts())
