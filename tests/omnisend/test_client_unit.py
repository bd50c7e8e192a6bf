"""The client's choke point with scripted answers (httpx.MockTransport): headers, retries,
error mapping, 429 pauses, observer callbacks and secrecy of the API key."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from omnisync import __version__
from omnisync.clock import FakeClock
from omnisync.contact import ContactWrite, EmailConsent
from omnisync.omnisend.batches import outcome_from_items
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.errors import (
    ApiError,
    RequestCancelled,
    TransportError,
    UnexpectedResponse,
)
from omnisync.omnisend.pacing import BrandLimiter, Kind
from omnisync.omnisend.retry import RetryPolicy
from tests.omnisend.conftest import encoded

API_KEY = "sk-live-7f3c-SECRET-9d21"


class Recorder:
    """A ClientObserver that keeps what it is told."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, int | None]] = []
        self.limited: list[tuple[str, float]] = []
        self.waits: list[tuple[Kind, float]] = []

    def request_finished(self, endpoint: str, status: int | None, seconds: float) -> None:
        assert seconds >= 0
        self.finished.append((endpoint, status))

    def rate_limited(self, endpoint: str, retry_after: float) -> None:
        self.limited.append((endpoint, retry_after))

    def limiter_waited(self, kind: Kind, seconds: float) -> None:
        self.waits.append((kind, seconds))


def problem(status: int, **extra: object) -> httpx.Response:
    body = {
        "type": "https://problems.omnisend.com/x",
        "title": "Problem",
        "status": status,
        "detail": f"status {status}",
        "instance": f"urn:omnisend:request:trace-{status}",
        **extra,
    }
    return httpx.Response(status, json=body)


def scripted(
    answers: list[httpx.Response | Exception],
) -> tuple[list[httpx.Request], Callable[[httpx.Request], httpx.Response]]:
    requests: list[httpx.Request] = []
    queue: Iterator[httpx.Response | Exception] = iter(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        answer = next(queue)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return requests, handle


def make_client(
    answers: list[httpx.Response | Exception],
    *,
    clock: FakeClock | None = None,
    policy: RetryPolicy | None = None,
) -> tuple[OmnisendClient, list[httpx.Request], Recorder, FakeClock]:
    clock = clock or FakeClock()
    requests, handle = scripted(answers)
    recorder = Recorder()
    client = OmnisendClient(
        "https://omnisend.test/api",
        API_KEY,
        limiter=BrandLimiter(clock=clock),
        clock=clock,
        transport=httpx.MockTransport(handle),
        retry_policy=policy,
        observer=recorder,
        random=random.Random(5),
    )
    return client, requests, recorder, clock


WRITES = [ContactWrite(email=f"p{index}@example.com") for index in range(3)]


def test_every_request_carries_the_documented_headers() -> None:
    client, requests, recorder, _ = make_client(
        [httpx.Response(201, json={"batchID": "b-1", "totalCount": 3})]
    )
    assert client.create_batch(encoded(WRITES)) == "b-1"
    request = requests[0]
    assert request.url == "https://omnisend.test/api/batches"
    assert request.headers["Authorization"] == f"Omnisend-API-Key {API_KEY}"
    assert request.headers["Omnisend-Version"] == "2026-03-15"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"omnisync/{__version__}"
    body = json.loads(request.content)
    assert body["endpoint"] == "contacts" and body["method"] == "POST"
    assert [item["identifiers"][0]["id"] for item in body["items"]] == [w.email for w in WRITES]
    assert recorder.finished == [("POST /batches", 201)]


def test_the_limiter_counts_each_request_from_when_its_answer_came_back() -> None:
    clock = FakeClock()
    sent_at: list[float] = []

    def slow(request: httpx.Request) -> httpx.Response:
        sent_at.append(clock.now())
        clock.advance(5.0)  # the answer takes 5 s
        return httpx.Response(202, json={})

    client = OmnisendClient(
        "https://omnisend.test/api",
        API_KEY,
        limiter=BrandLimiter(10, 1, clock=clock, safety_margin=0.0),
        clock=clock,
        transport=httpx.MockTransport(slow),
    )
    client.add_tag("vip", ["a@example.com"])
    client.add_tag("vip", ["b@example.com"])
    assert sent_at == [0.0, 65.0]  # a window after the first answer, not after its sending


def test_a_cancelled_request_sends_nothing_and_gives_its_slot_back() -> None:
    clock = FakeClock()
    requests, handle = scripted([httpx.Response(201, json={"batchID": "b-1"})])
    client = OmnisendClient(
        "https://omnisend.test/api",
        API_KEY,
        # One request a window: a slot kept by the cancelled request would cost 60 s.
        limiter=BrandLimiter(1, 1, clock=clock, safety_margin=0.0),
        clock=clock,
        transport=httpx.MockTransport(handle),
    )
    with pytest.raises(RequestCancelled):
        client.create_batch(encoded(WRITES), cancelled=lambda: True)
    assert requests == []
    assert client.create_batch(encoded(WRITES), cancelled=lambda: False) == "b-1"
    assert clock.sleeps == []


def test_transient_failures_are_retried_with_backoff_then_succeed() -> None:
    client, requests, recorder, clock = make_client(
        [
            problem(503),
            httpx.ConnectError("connection refused"),
            problem(408),
            httpx.Response(201, json={"batchID": "b-2"}),
        ]
    )
    assert client.create_batch(encoded(WRITES)) == "b-2"
    assert len(requests) == 4
    assert len(clock.sleeps) == 3  # one backoff before each retry
    assert all(0 <= delay <= 30 for delay in clock.sleeps)
    assert [status for _, status in recorder.finished] == [503, None, 408, 201]


def test_transient_failures_give_up_after_max_attempts_with_a_typed_error() -> None:
    client, requests, _, _ = make_client([problem(500)] * 3, policy=RetryPolicy(max_attempts=3))
    with pytest.raises(
        ApiError, match=r"500.*run again later.*trace urn:omnisend:request:trace-500"
    ):
        client.add_tag("vip", ["a@example.com"])
    assert len(requests) == 3
    client, requests, _, _ = make_client(
        [httpx.ReadTimeout("timed out")] * 2, policy=RetryPolicy(max_attempts=2)
    )
    with pytest.raises(TransportError, match="after 2 attempt"):
        client.get_contact("a@example.com")


def test_an_error_after_an_unanswered_attempt_says_the_request_may_have_been_processed() -> None:
    # The first attempt's answer was lost (Omnisend may have created the batch); the retry
    # is refused. The refusal alone must not be read as "nothing was processed".
    client, _, _, _ = make_client([httpx.ReadTimeout("timed out"), problem(400)])
    with pytest.raises(ApiError) as caught:
        client.create_batch(encoded(WRITES))
    assert caught.value.status == 400 and caught.value.after_unanswered
    client, _, _, _ = make_client([problem(503), problem(400)])
    with pytest.raises(ApiError) as caught:
        client.create_batch(encoded(WRITES))
    assert not caught.value.after_unanswered


CONSENTED = [
    ContactWrite(
        email=f"c{index}@example.com",
        consent=EmailConsent(status="subscribed", changed_at="2024-05-01T09:30:00Z"),
    )
    for index in range(3)
]


@pytest.mark.parametrize(
    "failure", [httpx.ReadTimeout("timed out"), problem(503), problem(500), problem(408)]
)
def test_a_batch_with_consent_records_is_never_sent_twice_after_a_failure_that_may_have_made_it(
    failure: object,
) -> None:
    # A second batch would repeat the consent records, which Omnisend keeps.
    created = httpx.Response(201, json={"batchID": "b-1", "totalCount": 3})
    client, requests, _, _ = make_client([failure, created])
    with pytest.raises((TransportError, ApiError)) as caught:
        client.create_batch(encoded(CONSENTED))
    assert len(requests) == 1
    error = caught.value
    assert isinstance(error, TransportError) or error.maybe_processed  # type: ignore[union-attr]
    # Without consent records, a second batch is one more upsert of the same fields.
    client, requests, _, _ = make_client([failure, created])
    assert client.create_batch(encoded(WRITES)) == "b-1"
    assert len(requests) == 2


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("refused"), httpx.ConnectTimeout("timed out")]
)
def test_a_batch_with_consent_records_is_sent_again_after_a_connection_never_made(
    failure: Exception,
) -> None:
    # No connection, no request: it cannot have been processed.
    created = httpx.Response(201, json={"batchID": "b-1", "totalCount": 3})
    client, requests, _, _ = make_client([failure, created])
    assert client.create_batch(encoded(CONSENTED)) == "b-1"
    assert len(requests) == 2
    # Never connected at all: the error says nothing can have been processed.
    client, _, _, _ = make_client([failure, failure], policy=RetryPolicy(max_attempts=2))
    with pytest.raises(TransportError) as caught:
        client.create_batch(encoded(CONSENTED))
    assert not caught.value.maybe_processed


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_final_statuses_are_raised_at_once(status: int) -> None:
    client, requests, _, clock = make_client([problem(status)])
    with pytest.raises(Exception) as caught:
        client.remove_tag("vip", ["a@example.com"])
    assert len(requests) == 1 and clock.sleeps == []
    assert getattr(caught.value, "status", None) == status
    assert f"trace-{status}" in str(caught.value)


def test_a_429_pauses_the_brand_for_retry_after_from_the_body_first() -> None:
    clock = FakeClock()
    client, requests, recorder, _ = make_client(
        [
            httpx.Response(
                429,
                json={"title": "Too many requests", "retryAfter": 7},
                headers={"Retry-After": "99"},
            ),
            httpx.Response(429, json={"title": "Too many requests"}, headers={"Retry-After": "3"}),
            httpx.Response(202),
        ],
        clock=clock,
    )
    client.add_tag("vip", ["a@example.com"])
    assert len(requests) == 3
    assert recorder.limited == [("POST /contacts/tags", 7.0), ("POST /contacts/tags", 3.0)]
    assert clock.sleeps == [7.0, 3.0]  # the limiter's pause, not a private sleep
    assert recorder.waits == [("tags", 7.0), ("tags", 3.0)]


@pytest.mark.parametrize("call", ["add_tag", "remove_tag", "create_batch"])
def test_a_stop_during_a_429_pause_ends_the_wait_and_sends_nothing_more(call: str) -> None:
    clock = FakeClock()
    client, requests, _, _ = make_client(
        [httpx.Response(429, json={"title": "Too many requests", "retryAfter": 120})],
        clock=clock,
    )

    def stopped() -> bool:
        return clock.now() >= 3  # the run is stopped 3 s into the pause

    with pytest.raises(RequestCancelled):
        if call == "create_batch":
            client.create_batch(encoded(WRITES), cancelled=stopped)
        else:
            getattr(client, call)("vip", ["a@example.com"], cancelled=stopped)
    assert len(requests) == 1
    assert clock.now() < 5  # not the 120 s of the pause


def test_a_429_storm_longer_than_the_budget_ends_in_rate_limited() -> None:
    answers: list[httpx.Response | Exception] = [
        httpx.Response(429, json={"retryAfter": 60}) for _ in range(4)
    ]
    client, requests, _, _ = make_client(answers, policy=RetryPolicy(rate_limit_budget=180.0))
    with pytest.raises(Exception, match="too many requests") as caught:
        client.create_batch(encoded(WRITES))
    assert getattr(caught.value, "status", None) == 429
    assert len(requests) == 4  # three waits of 60 s fit the 180 s budget, the 4th does not


def test_one_429_asking_for_a_wait_past_the_budget_says_so() -> None:
    # Not a storm: "kept answering 'too many requests' … lower rate_limit" would mislead.
    answers: list[httpx.Response | Exception] = [httpx.Response(429, json={"retryAfter": 3600})]
    client, requests, _, _ = make_client(answers)
    with pytest.raises(ApiError) as caught:
        client.create_batch(encoded(WRITES))
    assert caught.value.status == 429 and len(requests) == 1
    assert "kept answering" not in str(caught.value)
    assert str(caught.value).endswith(
        "Omnisend asked for a wait of 3600 s, more than the 900 s allowed; run again later"
    )


@pytest.mark.parametrize(
    "answer",
    [
        {"json": {"title": "Too many requests", "retryAfter": 0}},
        {
            "json": {"title": "Too many requests"},
            "headers": {"Retry-After": "Thu, 01 Jan 2015 00:00:00 GMT"},
        },
    ],
    ids=["retryAfter-0", "Retry-After-date-in-the-past"],
)
def test_a_429_storm_asking_for_no_wait_still_gives_up_within_the_budget(
    answer: dict[str, object],
) -> None:
    # retryAfter is whole seconds (the OpenAPI document types it as an integer), so a
    # server rounding down sends 0. Such waits once added nothing to the budget: the
    # request was retried for ever (32,077 requests in 9 hours of clock time).
    clock = FakeClock()
    requests: list[httpx.Request] = []

    def always_429(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        assert len(requests) <= 1000, f"still retrying after {len(requests)} 429s"
        return httpx.Response(429, **answer)  # type: ignore[arg-type]

    client = OmnisendClient(
        "https://omnisend.test/api",
        API_KEY,
        limiter=BrandLimiter(clock=clock),
        clock=clock,
        transport=httpx.MockTransport(always_429),
        random=random.Random(5),
    )
    policy = RetryPolicy()
    with pytest.raises(ApiError, match="too many requests") as caught:
        client.add_tag("vip", ["a@example.com"])
    assert caught.value.status == 429
    assert clock.now() <= policy.rate_limit_budget
    # Every retry waited, and the waits backed off: far fewer requests than a fixed floor
    # of base_delay would have sent in 15 minutes.
    assert all(delay >= policy.base_delay for delay in clock.sleeps)
    assert len(requests) < 200


def test_giving_up_on_429s_logs_the_time_really_waited(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="omnisync")
    answers: list[httpx.Response | Exception] = [
        httpx.Response(429, json={"retryAfter": 100}) for _ in range(2)
    ]
    client, requests, _, clock = make_client(answers, policy=RetryPolicy(rate_limit_budget=180.0))
    with pytest.raises(ApiError):
        client.add_tag("vip", ["a@example.com"])
    assert len(requests) == 2 and clock.now() == 100.0  # a second wait of 100 s would not fit
    [line] = [r.getMessage() for r in caplog.records if "giving up" in r.getMessage()]
    assert "still rate limited after waiting 100 s" in line  # not the budget's 180


def test_the_429_budget_counts_the_brand_pauses_other_threads_imposed() -> None:
    # Two exports on one connection share its limiter: while this request is in flight,
    # another thread meets a 429 asking 300 s and pauses the whole brand (its penalise).
    # Counting only this request's own retryAfter (10 s a time), it once gave up after
    # 91 attempts and 27,000 s of clock time against a 900 s budget.
    clock = FakeClock()
    limiter = BrandLimiter(clock=clock)
    requests: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(clock.now())
        assert len(requests) <= 100, "still retrying"
        limiter.penalise(300.0)  # what the other thread's client does on its 429
        return httpx.Response(429, json={"title": "Too many requests", "retryAfter": 10})

    client = OmnisendClient(
        "https://omnisend.test/api",
        API_KEY,
        limiter=limiter,
        clock=clock,
        transport=httpx.MockTransport(handle),
        random=random.Random(5),
    )
    with pytest.raises(ApiError, match="too many requests"):
        client.add_tag("vip", ["a@example.com"])
    assert requests == [0.0, 300.0, 600.0, 900.0]  # the 4th's wait would end past 900 s
    assert clock.now() <= RetryPolicy().rate_limit_budget


def test_a_404_says_to_check_base_url_unless_a_batch_may_have_expired() -> None:
    # A base_url without /api: every path is unknown, and no batch is involved.
    not_found = problem(404, title="Not found", detail="Unknown path; the API lives under /api")
    client, _, _, _ = make_client([not_found])
    with pytest.raises(ApiError) as caught:
        client.create_batch(encoded(WRITES))
    assert "check that the connection's base_url ends in /api" in str(caught.value)
    assert "7 days" not in str(caught.value)
    # Asked about a batch it listed as stopped, Omnisend no longer knows it.
    listing = {"batches": [{"batchID": "b-1", "status": "stopped", "totalCount": 3}]}
    client, _, _, _ = make_client([httpx.Response(200, json=listing), problem(404)])
    with pytest.raises(ApiError) as caught:
        client.poll_batches({"b-1": ("a@example.com",)})
    assert "read the items of batch b-1" in str(caught.value)
    assert "a batch is kept for about 7 days" in str(caught.value)
    assert "base_url" not in str(caught.value)


def test_a_400_carries_every_field_problem() -> None:
    client, _, _, _ = make_client(
        [
            problem(
                400,
                errors=[
                    {
                        "field": "identifiers[0].id",
                        "code": "invalid_format",
                        "message": "bad e-mail",
                    },
                    {"field": "countryCode", "code": "invalid_format", "message": "not ISO"},
                ],
            )
        ]
    )
    with pytest.raises(ApiError) as caught:
        client.create_batch(encoded(WRITES))
    assert caught.value.status == 400
    assert [p.field for p in caught.value.problems] == ["identifiers[0].id", "countryCode"]
    assert "countryCode: not ISO [invalid_format]" in str(caught.value)


def test_the_api_key_never_leaks_into_repr_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client, _, _, _ = make_client(
        [
            problem(503, detail=f"upstream said {API_KEY}"),
            problem(401, detail=f"key {API_KEY} is revoked"),
        ]
    )
    assert API_KEY not in repr(client) and "omnisend.test" in repr(client)
    with pytest.raises(ApiError) as caught:
        client.create_batch(encoded(WRITES))
    assert caught.value.status == 401
    assert API_KEY not in str(caught.value) and "[redacted]" in str(caught.value)
    assert "wrong or revoked" in str(caught.value)
    assert caplog.records, "the retry and the failure were logged"
    assert all(API_KEY not in record.getMessage() for record in caplog.records)
    assert all(API_KEY not in str(vars(record)) for record in caplog.records)


def test_a_malformed_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="API key") as caught:
        OmnisendClient(
            "https://omnisend.test/api",
            "bad key\n",
            limiter=BrandLimiter(clock=FakeClock()),
            clock=FakeClock(),
        )
    assert "bad key" not in str(caught.value)


def test_tags_calls_over_the_limit_are_refused_before_sending() -> None:
    client, requests, _, _ = make_client([])
    with pytest.raises(ValueError, match="1 to 250"):
        client.add_tag("vip", [f"x{i}@example.com" for i in range(251)])
    assert requests == []


def test_a_success_without_a_batch_id_is_an_unexpected_response() -> None:
    client, _, _, _ = make_client([httpx.Response(201, json={"totalCount": 3})])
    with pytest.raises(UnexpectedResponse, match="no batchID"):
        client.create_batch(encoded(WRITES))


def test_an_item_without_its_request_is_read_by_its_contact_response() -> None:
    # The published BatchItem requires neither body: an item whose e-mail cannot be read
    # is never acknowledged, so its contact would be re-sent (with consent) every run.
    items = {
        "responses": [
            {"responseCode": 200, "response": {"identifiers": [{"type": "email", "id": "a@x.io"}]}},
            {"responseCode": 201, "response": {"email": "b@x.io"}},
        ]
    }
    outcome = outcome_from_items("b1", "finished", items, ["a@x.io", "b@x.io", "c@x.io"])
    assert outcome.accepted == {"a@x.io", "b@x.io"}


@pytest.mark.parametrize("newest_first", [True, False], ids=["newest first", "oldest first"])
def test_unfinished_batches_does_not_rely_on_the_listings_order(newest_first: bool) -> None:
    # Omnisend does not document the order of GET /batches: read oldest first, the first
    # old batch must not end the look before the queued one is seen.
    from omnisync.omnisend.batches import unfinished_batches

    start = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    listing = [
        {"batchID": str(minute), "createdAt": f"2026-05-01T11:{minute:02d}:00Z", "status": status}
        for minute, status in ((10, "finished"), (30, "pending"), (50, "inProgress"))
    ]
    listing.append({"batchID": "late", "createdAt": "2026-05-01T12:30:00Z", "status": "pending"})
    if newest_first:
        listing.reverse()

    def fetch(path: str, **request: Any) -> dict[str, Any]:
        assert request["endpoint"] == "GET /batches"
        return {"batches": listing}

    found = unfinished_batches(
        fetch, created_from=start - timedelta(minutes=40), created_until=start
    )
    assert found == 2  # 11:30 and 11:50; 11:10 is before the window, 12:30 after it
