"""POST /batches and GET /batches[/{id}[/items]]: lifecycle, per-item results, listing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from omnisync.clock import FakeClock
from omnisync.emulator import Emulator
from omnisync.emulator.brand import UPDATED, Batch, render_batch
from tests.emulator.conftest import api_client, contact_body


def batch(items: list[Any], **extra: Any) -> dict[str, Any]:
    return {"endpoint": "contacts", "method": "POST", "items": items, **extra}


@pytest.fixture
def slow_emulator(start_emulator: Callable[..., Emulator], fake_clock: FakeClock) -> Emulator:
    return start_emulator(clock=fake_clock, batch_delay=10.0)


def test_batch_goes_pending_in_progress_finished(
    slow_emulator: Emulator, fake_clock: FakeClock
) -> None:
    with api_client(slow_emulator) as client:
        created = client.post(
            "/batches", json=batch([contact_body(f"p{i}@example.com") for i in range(3)])
        )
        assert created.status_code == 201
        assert created.json()["totalCount"] == 3
        batch_id = created.json()["batchID"]
        pending = client.get(f"/batches/{batch_id}").json()
        assert (pending["status"], pending["finishedCount"]) == ("pending", 0)
        assert "startedAt" not in pending
        assert slow_emulator.contact_count() == 0

        fake_clock.advance(5.0)
        assert slow_emulator.settle()
        running = client.get(f"/batches/{batch_id}").json()
        assert running["status"] == "inProgress"
        assert running["finishedCount"] == 3 and "startedAt" in running
        assert slow_emulator.contact_count() == 3

        fake_clock.advance(5.0)
        assert slow_emulator.settle()
        done = client.get(f"/batches/{batch_id}").json()
        assert done["status"] == "finished"
        assert (done["totalCount"], done["finishedCount"], done["errorsCount"]) == (3, 3, 0)
        assert done["endedAt"] >= done["startedAt"] >= done["createdAt"]


def test_items_report_each_result_with_the_request_as_sent(
    emulator: Emulator, client: httpx.Client
) -> None:
    emulator.seed_contact("old@example.com")
    items = [
        contact_body("new@example.com", firstName="New"),
        contact_body("old@example.com", city="Kaunas"),
        {"identifiers": [{"type": "email", "id": "not-an-email"}], "countryCode": "Lithuania"},
    ]
    batch_id = client.post("/batches", json=batch(items)).json()["batchID"]
    assert emulator.drain()
    result = client.get(f"/batches/{batch_id}/items").json()
    assert (result["status"], result["finishedCount"], result["errorsCount"]) == ("finished", 3, 1)
    by_email = {entry["request"]["identifiers"][0]["id"]: entry for entry in result["responses"]}
    assert by_email["new@example.com"]["responseCode"] == 201
    assert by_email["new@example.com"]["response"]["firstName"] == "New"
    assert by_email["old@example.com"]["responseCode"] == 200
    assert by_email["old@example.com"]["request"] == items[1]
    [error] = result["errors"]
    assert error["request"] == items[2]
    assert error["responseCode"] == 400
    assert {(e["field"], e["code"]) for e in error["response"]["errors"]} == {
        ("identifiers[0].id", "invalid_format"),
        ("countryCode", "invalid_format"),
    }
    item_ids = [entry["itemID"] for entry in result["responses"] + result["errors"]]
    assert len(set(item_ids)) == 3


def test_an_item_welcomes_like_post_contacts(emulator: Emulator, client: httpx.Client) -> None:
    client.post(
        "/batches", json=batch([{"identifiers": [{"type": "email", "id": "w@example.com"}]}])
    )
    assert emulator.drain()
    assert [message.email for message in emulator.welcome_messages()] == ["w@example.com"]


def test_batch_envelope_errors_come_all_at_once(emulator: Emulator) -> None:
    with api_client(emulator, validate_requests=False) as raw_client:
        response = raw_client.post("/batches", json={"method": "GET", "items": []})
        assert response.status_code == 400
        fields = {(e["field"], e["code"]) for e in response.json()["errors"]}
        assert fields == {
            ("endpoint", "required"),
            ("method", "invalid_format"),
            ("items", "required"),
        }
        too_many = raw_client.post("/batches", json=batch([{}] * 101))
        assert [(e["field"], e["code"]) for e in too_many.json()["errors"]] == [
            ("items", "too_long")
        ]
        products = raw_client.post("/batches", json={**batch([{}]), "endpoint": "products"})
        assert products.json()["errors"][0]["field"] == "endpoint"


def test_a_batch_over_the_size_limit_is_refused_with_413(emulator: Emulator) -> None:
    emulator.configure(max_batch_bytes=5_000)
    items = [contact_body(f"big{i}@example.com", address="x" * 200) for i in range(40)]
    with api_client(emulator) as client:
        response = client.post("/batches", json=batch(items))
        assert response.status_code == 413
        assert response.json()["status"] == 413
        assert client.post("/batches", json=batch(items[:5])).status_code == 201


def test_unknown_batch_is_404_and_batches_are_per_brand() -> None:
    with Emulator(api_keys=("key-a", "key-b"), batch_delay=0.0) as emulator:
        with (
            api_client(emulator, api_key="key-a") as brand_a,
            api_client(emulator, api_key="key-b") as brand_b,
        ):
            batch_id = brand_a.post("/batches", json=batch([contact_body("a@example.com")])).json()[
                "batchID"
            ]
            assert brand_a.get(f"/batches/{batch_id}").status_code == 200
            assert brand_b.get(f"/batches/{batch_id}").status_code == 404
            assert brand_b.get(f"/batches/{batch_id}/items").status_code == 404
            listed = brand_b.get("/batches", params={"endpoint": "contacts"}).json()
            assert listed["batches"] == []
        assert emulator.drain()
        assert emulator.contact_count(brand="brand-1") == 1
        assert emulator.contact_count(brand="brand-2") == 0


def test_a_batch_is_forgotten_once_kept_for_the_retention_period(
    slow_emulator: Emulator, fake_clock: FakeClock
) -> None:
    week = 7 * 24 * 3600.0
    assert slow_emulator.settings.batch_retention == week  # Omnisend keeps them about 7 days
    with api_client(slow_emulator) as client:
        old = client.post("/batches", json=batch([contact_body("old@example.com")]))
        fake_clock.advance(week - 1.0)
        new = client.post("/batches", json=batch([contact_body("new@example.com")]))
        assert slow_emulator.settle()
        old_id, new_id = old.json()["batchID"], new.json()["batchID"]
        assert client.get(f"/batches/{old_id}").json()["status"] == "finished"

        fake_clock.advance(1.0)
        for path in (f"/batches/{old_id}", f"/batches/{old_id}/items"):
            assert client.get(path).status_code == 404, path
        listed = client.get("/batches", params={"endpoint": "contacts"}).json()["batches"]
        assert [summary["batchID"] for summary in listed] == [new_id]
        assert [summary["batchID"] for summary in slow_emulator.batches()] == [new_id]
        assert client.get(f"/batches/{new_id}/items").status_code == 200


def test_list_is_newest_first_with_offset_paging_and_status_filter(
    emulator: Emulator, client: httpx.Client
) -> None:
    ids = [
        client.post("/batches", json=batch([contact_body(f"l{i}@example.com")])).json()["batchID"]
        for i in range(5)
    ]
    assert emulator.drain()
    first = client.get("/batches", params={"endpoint": "contacts", "limit": 2}).json()
    assert [b["batchID"] for b in first["batches"]] == ids[::-1][:2]
    assert first["paging"]["offset"] == 0 and first["paging"]["limit"] == 2
    assert "previous" not in first["paging"]
    second = client.get(first["paging"]["next"]).json()
    assert [b["batchID"] for b in second["batches"]] == ids[::-1][2:4]
    assert second["paging"]["previous"].endswith("offset=0")
    last = client.get(second["paging"]["next"]).json()
    assert [b["batchID"] for b in last["batches"]] == [ids[0]]
    assert "next" not in last["paging"]
    finished = client.get("/batches", params={"endpoint": "contacts", "status": "finished"}).json()
    assert len(finished["batches"]) == 5
    pending = client.get("/batches", params={"endpoint": "contacts", "status": "pending"}).json()
    assert pending["batches"] == []
    assert all("responses" not in b for b in finished["batches"])


def test_list_parameters_are_validated(emulator: Emulator) -> None:
    with api_client(emulator, validate_requests=False) as raw_client:
        for params, field in (
            ({}, "endpoint"),
            ({"endpoint": "contacts", "limit": 251}, "limit"),
            ({"endpoint": "contacts", "limit": 0}, "limit"),
            ({"endpoint": "contacts", "offset": -1}, "offset"),
            ({"endpoint": "contacts", "offset": 10**26}, "offset"),
            ({"endpoint": "contacts", "status": "done"}, "status"),
            ({"endpoint": "contacts", "dateFrom": "yesterday"}, "dateFrom"),
        ):
            response = raw_client.get("/batches", params={k: str(v) for k, v in params.items()})
            assert response.status_code == 400, params
            assert response.json()["errors"][0]["field"] == field


def test_dates_filter_the_list(emulator: Emulator, client: httpx.Client) -> None:
    client.post("/batches", json=batch([contact_body("d@example.com")]))
    today = emulator.clock.wall().date().isoformat()
    assert (
        len(
            client.get("/batches", params={"endpoint": "contacts", "dateFrom": today}).json()[
                "batches"
            ]
        )
        == 1
    )
    assert (
        client.get("/batches", params={"endpoint": "contacts", "dateTo": "2000-01-01"}).json()[
            "batches"
        ]
        == []
    )


def test_a_done_batch_keeps_its_request_compressed_and_renders_fresh_copies() -> None:
    items = [contact_body("a@x.io")]
    done = Batch("00000001b1", "contacts", "POST", "api", items, 1.0)
    pending = render_batch(done)
    done.started, done.results[0] = 2.0, UPDATED
    done.end("finished", 3.0)
    first = render_batch(done)
    assert first != pending and first["status"] == "finished" and first["finishedCount"] == 1
    assert (done.items, done.request_items()) == (None, items)
    first["status"] = "changed by a caller"
    assert render_batch(done) == {**first, "status": "finished"}
