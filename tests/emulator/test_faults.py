"""Fault injection, set at construction, from Python at run time, and over HTTP."""

from __future__ import annotations

import httpx
import pytest

from omnisync.clock import FakeClock
from omnisync.emulator import Emulator, Faults
from omnisync.emulator.faults import check_number
from tests.emulator.conftest import HEADERS, api_client, contact_body

LIST = {"endpoint": "contacts"}


def statuses(client: httpx.Client, count: int) -> list[int]:
    return [client.get("/batches", params=LIST).status_code for _ in range(count)]


def test_500_and_503_answer_problems_without_processing(emulator: Emulator) -> None:
    with api_client(emulator) as client:
        emulator.set_faults(error_rate_500=1.0)
        failed = client.post("/contacts", json=contact_body("a@example.com"))
        assert failed.status_code == 500 and failed.json()["status"] == 500
        emulator.set_faults(error_rate_500=0.0, error_rate_503=1.0)
        unavailable = client.post("/contacts", json=contact_body("a@example.com"))
        assert unavailable.status_code == 503 and unavailable.json()["status"] == 503
        assert emulator.contact("a@example.com") is None
        emulator.set_faults(Faults())
        assert client.post("/contacts", json=contact_body("a@example.com")).status_code == 201


def test_error_draws_are_reproducible_for_a_seed() -> None:
    faults = Faults(error_rate_503=0.5, seed=7)
    runs = []
    for _ in range(2):
        with Emulator(faults=faults, rate_limits=False) as emulator, api_client(emulator) as client:
            runs.append(statuses(client, 30))
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}


def test_latency_is_added_in_modelled_seconds() -> None:
    clock = FakeClock()
    with (
        Emulator(clock=clock, faults=Faults(latency=2.5)) as emulator,
        api_client(emulator) as client,
    ):
        before = clock.now()
        assert client.get("/batches", params=LIST).status_code == 200
        assert clock.now() - before == 2.5
        emulator.set_faults(latency=0.0)
        before = clock.now()
        client.get("/batches", params=LIST)
        assert clock.now() == before
    assert 2.5 in clock.sleeps


@pytest.mark.parametrize("after_processing", [False, True])
def test_dropped_connections_answer_nothing(emulator: Emulator, after_processing: bool) -> None:
    emulator.set_faults(drop_rate=1.0, drop_after_processing=after_processing)
    with api_client(emulator) as client, pytest.raises(httpx.TransportError):
        client.post("/contacts", json=contact_body("dropped@example.com"))
    assert (emulator.contact("dropped@example.com") is not None) is after_processing
    [record] = emulator.request_log()
    assert record.status is None
    assert emulator.counts()["by_endpoint"]["POST /contacts"] == {"dropped": 1}
    emulator.set_faults(drop_rate=0.0)
    with api_client(emulator) as client:
        assert client.get("/batches", params=LIST).status_code == 200


def test_a_drop_after_processing_loses_only_answers_of_processed_requests(
    emulator: Emulator,
) -> None:
    # An unknown path or an unreadable body is refused before any processing: answered.
    emulator.set_faults(drop_rate=1.0, drop_after_processing=True)
    # Not a path of the published API, so not through the contract-checking client.
    assert httpx.get(f"{emulator.base_url}/nope", headers=HEADERS).status_code == 404
    with api_client(emulator, validate_requests=False) as client:
        unreadable = client.post(
            "/batches", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert unreadable.status_code == 400
    assert [record.status for record in emulator.request_log()] == [404, 400]


def test_failing_emails_fail_contacts_and_batch_items_naming_the_field(emulator: Emulator) -> None:
    emulator.set_faults(failing_emails=["bad@example.com"])
    with api_client(emulator) as client:
        refused = client.post("/contacts", json=contact_body("bad@example.com"))
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["field"] == "identifiers[0].id"
        assert emulator.request_log()[-1].emails == ("bad@example.com",)
        items = [contact_body("good@example.com"), contact_body("bad@example.com")]
        batch_id = client.post(
            "/batches", json={"endpoint": "contacts", "method": "POST", "items": items}
        ).json()["batchID"]
        assert emulator.drain()
        result = client.get(f"/batches/{batch_id}/items").json()
    assert [e["request"]["identifiers"][0]["id"] for e in result["errors"]] == ["bad@example.com"]
    assert result["errors"][0]["response"]["errors"][0]["field"] == "identifiers[0].id"
    assert [e["responseCode"] for e in result["responses"]] == [201]


def test_a_batch_stops_after_too_many_item_errors(emulator: Emulator) -> None:
    emulator.set_faults(stop_after_errors=2, failing_emails=["f1@example.com", "f2@example.com"])
    emails = ["ok1@example.com", "f1@example.com", "f2@example.com", "ok2@example.com"]
    with api_client(emulator) as client:
        batch_id = client.post(
            "/batches",
            json={
                "endpoint": "contacts",
                "method": "POST",
                "items": [contact_body(e) for e in emails],
            },
        ).json()["batchID"]
        assert emulator.drain()
        result = client.get(f"/batches/{batch_id}/items").json()
        listed = client.get("/batches", params={**LIST, "status": "stopped"}).json()
    assert (result["status"], result["finishedCount"], result["errorsCount"]) == ("stopped", 3, 2)
    assert "endedAt" in result
    assert emulator.contact("ok2@example.com") is None
    assert [b["batchID"] for b in listed["batches"]] == [batch_id]


def test_a_forced_burst_of_429s_then_normal_service() -> None:
    faults = Faults(force_429_count=3, force_429_retry_after=7)
    with Emulator(faults=faults, requests_per_minute=4) as emulator, api_client(emulator) as client:
        answers = [client.get("/batches", params=LIST) for _ in range(3)]
        assert [a.json()["retryAfter"] for a in answers] == [7, 7, 7]
        assert all("retry-after" not in a.headers for a in answers)
        # The forced 429s were not counted: the full window is still free.
        assert statuses(client, 3) == [200, 200, 200]
        emulator.set_faults(force_429_count=1)
        assert statuses(client, 2) == [429, 200]


def test_faults_can_be_limited_to_endpoints(emulator: Emulator) -> None:
    emulator.set_faults(error_rate_503=1.0, only_endpoints=["POST /batches"])
    with api_client(emulator) as client:
        assert client.get("/batches", params=LIST).status_code == 200
        items = [contact_body("x@example.com")]
        response = client.post(
            "/batches", json={"endpoint": "contacts", "method": "POST", "items": items}
        )
        assert response.status_code == 503


def test_faults_over_http_and_bad_settings(emulator: Emulator) -> None:
    faults_url = emulator.url + "/_emulator/faults"
    changed = httpx.put(
        faults_url, json={"error_rate_503": 1.0, "failing_emails": ["z@example.com"]}
    )
    assert changed.status_code == 200
    assert changed.json()["error_rate_503"] == 1.0
    assert changed.json()["failing_emails"] == ["z@example.com"]
    assert emulator.faults.failing_emails == frozenset({"z@example.com"})
    with api_client(emulator) as client:
        assert client.get("/batches", params=LIST).status_code == 503
    for bad in (
        {"error_rate_500": 2},
        {"latency": -1},
        {"no_such_fault": 1},
        {"failing_emails": "x"},
    ):
        response = httpx.put(faults_url, json=bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]
    assert httpx.get(faults_url).json()["error_rate_503"] == 1.0


def test_fault_settings_are_checked_in_python() -> None:
    with pytest.raises(ValueError, match="error_rate_503"):
        Faults(error_rate_503=1.5)
    with pytest.raises(ValueError, match="must not exceed 1"):
        Faults(error_rate_500=0.6, error_rate_503=0.6)
    with pytest.raises(ValueError, match="unknown fault"):
        Faults().changed({"error_rate": 0.1})


@pytest.mark.parametrize("field", ["error_rate_500", "drop_rate", "latency"])
def test_a_fault_that_is_not_a_number_in_range_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Faults(**{field: float("nan")})
    with pytest.raises(ValueError, match=field):
        Faults(**{field: -1})


def test_a_number_bounded_only_from_above_is_refused_with_its_bound() -> None:
    with pytest.raises(ValueError, match="knob must be a number at most 1, got 5"):
        check_number("knob", 5, high=1)
