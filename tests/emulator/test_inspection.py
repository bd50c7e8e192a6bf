"""The inspection API over HTTP (loopback, no key) and its Python twin."""

from __future__ import annotations

import httpx

from omnisync.emulator import Emulator
from tests.emulator.conftest import api_client, contact_body


def inspect(emulator: Emulator, method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, f"{emulator.url}/_emulator{path}", **kwargs)  # type: ignore[arg-type]


def test_seed_then_read_contacts_over_http(emulator: Emulator) -> None:
    seeded = inspect(
        emulator,
        "POST",
        "/contacts",
        json={
            "email": "old@example.com",
            "fields": {"firstName": "Old", "countryCode": "LT"},
            "customProperties": {"tier": "gold"},
            "tags": ["theirs"],
            "status": "unsubscribed",
            "statusChangedAt": "2025-02-01T08:00:00Z",
        },
    )
    assert seeded.status_code == 201
    listed = inspect(emulator, "GET", "/contacts").json()["contacts"]
    assert [c["email"] for c in listed] == ["old@example.com"]
    [contact] = inspect(emulator, "GET", "/contacts", params={"email": "old@example.com"}).json()[
        "contacts"
    ]
    assert contact["status"] == "unsubscribed"
    assert contact["statuses"][0]["statusChangedAt"] == "2025-02-01T08:00:00Z"
    assert (contact["firstName"], contact["tags"], contact["customProperties"]) == (
        "Old",
        ["theirs"],
        {"tier": "gold"},
    )
    assert inspect(emulator, "GET", "/welcome-messages").json() == {"welcomeMessages": []}
    assert inspect(emulator, "GET", "/status-changes").json() == {"statusChanges": []}
    with api_client(emulator) as client:
        fetched = client.get("/contacts", params={"email": "old@example.com"}).json()
    assert fetched["contacts"][0]["id"] == contact["id"]


def test_bad_seeds_and_unknown_paths_are_clear_errors(emulator: Emulator) -> None:
    for body, fragment in (
        ({}, "email is required"),
        ({"email": "nope"}, "valid email"),
        ({"email": "a@example.com", "status": "gone"}, "status"),
        ({"email": "a@example.com", "statusChangedAt": "May"}, "statusChangedAt"),
        ({"email": "a@example.com", "fields": {"nickname": "A"}}, "nickname"),
        # A seeded contact holds only what the API would accept.
        ({"email": "a@example.com", "fields": {"countryCode": "XX"}}, "countryCode"),
        ({"email": "a@example.com", "tags": "vip"}, "tags"),
        ({"email": "a@example.com", "brand": "brand-9"}, "brand-9"),
    ):
        response = inspect(emulator, "POST", "/contacts", json=body)
        assert response.status_code == 400, body
        assert fragment in response.json()["error"]
    assert inspect(emulator, "POST", "/contacts", content=b"[").status_code == 400
    assert inspect(emulator, "GET", "/nothing").status_code == 404


def test_welcomes_status_changes_requests_and_counts_over_http(emulator: Emulator) -> None:
    with api_client(emulator) as client:
        client.post("/contacts", json={"identifiers": [{"type": "email", "id": "w@example.com"}]})
        subscribed = {"channels": {"email": {"status": "subscribed"}}}
        client.post("/contacts", json=contact_body("w@example.com", identifier=subscribed))
        items = [contact_body("b1@example.com"), contact_body("w@example.com")]
        client.post("/batches", json={"endpoint": "contacts", "method": "POST", "items": items})
        client.get("/batches", params={"endpoint": "contacts"})
    welcomes = inspect(emulator, "GET", "/welcome-messages").json()["welcomeMessages"]
    assert [(w["email"], w["channel"]) for w in welcomes] == [("w@example.com", "email")]
    changes = inspect(emulator, "GET", "/status-changes").json()["statusChanges"]
    assert [(c["email"], c["from"], c["to"]) for c in changes] == [
        ("w@example.com", "nonSubscribed", "subscribed")
    ]
    requests = inspect(emulator, "GET", "/requests").json()["requests"]
    assert [(r["endpoint"], r["status"]) for r in requests] == [
        ("POST /contacts", 201),
        ("POST /contacts", 200),
        ("POST /batches", 201),
        ("GET /batches", 200),
    ]
    assert requests[2]["emails"] == ["b1@example.com", "w@example.com"]
    assert requests[2]["brand"] == "brand-1" and isinstance(requests[2]["at"], float)
    later = inspect(emulator, "GET", "/requests", params={"since": requests[1]["sequence"]})
    assert len(later.json()["requests"]) == 2
    counts = inspect(emulator, "GET", "/counts").json()
    assert counts["total"] == 4 and counts["rate_limited"] == 0
    assert counts["by_endpoint"]["POST /contacts"] == {"200": 1, "201": 1}
    assert inspect(emulator, "POST", "/drain", json={"timeout": 5}).json() == {"idle": True}
    batches = inspect(emulator, "GET", "/batches").json()["batches"]
    assert [b["status"] for b in batches] == ["finished"]
    assert inspect(emulator, "GET", "/brands").json() == {"brands": ["brand-1"]}


def test_settings_and_reset_over_http(emulator: Emulator) -> None:
    settings = inspect(
        emulator, "PUT", "/settings", json={"rate_limits": False, "batch_delay": 1.5}
    )
    assert settings.json()["batch_delay"] == 1.5 and settings.json()["rate_limits"] is False
    assert emulator.settings.batch_delay == 1.5
    assert inspect(emulator, "PUT", "/settings", json={"batch_delay": -1}).status_code == 400
    assert inspect(emulator, "PUT", "/settings", json={"speed": 2}).status_code == 400
    emulator.seed_contact("gone@example.com")
    with api_client(emulator) as client:
        client.get("/batches", params={"endpoint": "contacts"})
    assert inspect(emulator, "POST", "/reset").json() == {"reset": True}
    assert emulator.contacts() == [] and emulator.request_log() == []
    assert emulator.counts()["total"] == 0


def test_the_request_log_shares_strings_and_can_be_trimmed() -> None:
    with Emulator(batch_delay=0.0, request_log_limit=2) as emulator, api_client(emulator) as client:
        for index in range(3):
            client.post("/contacts", json=contact_body(f"r{index}@example.com"))
        client.post("/contacts", json=contact_body("r2@example.com"))
        log = emulator.request_log()
        assert [r.emails for r in log] == [("r2@example.com",), ("r2@example.com",)]
        # The repeat names the stored contact's own string, not a second copy.
        assert log[1].emails[0] is log[0].emails[0]
    with Emulator(log_emails=False) as quiet, api_client(quiet) as client:
        client.post("/contacts", json=contact_body("q@example.com"))
        assert quiet.request_log()[0].emails == ()


def test_several_brands_must_be_named(emulator: Emulator) -> None:
    with Emulator(api_keys=("k1", "k2")) as two:
        response = inspect(two, "GET", "/contacts")
        assert response.status_code == 400
        assert "brand-1" in response.json()["error"]
        assert inspect(two, "GET", "/contacts", params={"brand": "brand-2"}).json() == {
            "contacts": []
        }


def test_contacts_deleted_and_tags_removed_behind_the_exporters_backs(
    emulator: Emulator,
) -> None:
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        emulator.seed_contact(email, tags=["vip", "theirs"])
    b_id = emulator.contact("b@example.com")["id"]  # type: ignore[index]
    sequence = len(emulator.request_log())
    assert emulator.remove_tags(["a@example.com", "nobody@example.com"], ["vip"]) == 1
    assert emulator.contact("a@example.com")["tags"] == ["theirs"]  # type: ignore[index]
    assert emulator.delete_contact("b@example.com") is True
    assert emulator.delete_contact("b@example.com") is False
    assert emulator.contact("b@example.com") is None
    assert [c["email"] for c in emulator.contacts()] == ["a@example.com", "c@example.com"]
    assert emulator.contact_count() == 2
    assert len(emulator.request_log()) == sequence  # not API calls: nothing logged
    with api_client(emulator) as client:
        assert client.get("/contacts", params={"email": "b@example.com"}).json()["contacts"] == []
        assert client.get(f"/contacts/{b_id}").status_code == 404
        # The e-mail can be created again, as a new contact with a new id.
        assert client.post("/contacts", json=contact_body("b@example.com")).status_code == 201
    assert emulator.contact("b@example.com")["id"] != b_id  # type: ignore[index]
    assert emulator.contact("c@example.com")["tags"] == ["vip", "theirs"]  # type: ignore[index]
