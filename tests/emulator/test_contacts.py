"""POST/GET/PATCH /contacts: Omnisend's behaviour, traps included."""

from __future__ import annotations

import httpx
import pytest

from omnisync.emulator import Emulator
from tests.emulator.conftest import api_client, contact_body


def test_create_then_update_answers_201_then_200_with_contact_response(
    client: httpx.Client,
) -> None:
    created = client.post("/contacts", json=contact_body("ann@example.com", firstName="Ann"))
    assert created.status_code == 201
    body = created.json()
    assert body["email"] == "ann@example.com"
    assert body["firstName"] == "Ann"
    assert body["status"] == "nonSubscribed"
    assert body["identifiers"][0]["channels"]["email"]["status"] == "nonSubscribed"
    updated = client.post("/contacts", json=contact_body("ann@example.com", lastName="Lee"))
    assert updated.status_code == 200
    assert updated.json()["id"] == body["id"]


def test_email_identifier_is_case_sensitive(client: httpx.Client, emulator: Emulator) -> None:
    assert client.post("/contacts", json=contact_body("Ann@Example.com")).status_code == 201
    assert client.post("/contacts", json=contact_body("ann@example.com")).status_code == 201
    assert emulator.contact_count() == 2
    assert emulator.contact("ANN@EXAMPLE.COM") is None


def test_fields_merge_and_absent_fields_stay(client: httpx.Client, emulator: Emulator) -> None:
    client.post(
        "/contacts",
        json=contact_body(
            "bo@example.com", firstName="Bo", city="Vilnius", customProperties={"a": "1", "b": 2}
        ),
    )
    client.post(
        "/contacts",
        json=contact_body("bo@example.com", lastName="Ek", customProperties={"b": 3}),
    )
    stored = emulator.contact("bo@example.com")
    assert stored is not None
    assert (stored["firstName"], stored["lastName"], stored["city"]) == ("Bo", "Ek", "Vilnius")
    assert stored["customProperties"] == {"a": "1", "b": 3}


def test_tags_in_a_body_replace_all_tags(client: httpx.Client, emulator: Emulator) -> None:
    emulator.seed_contact("cy@example.com", tags=["owner-tag", "vip"])
    client.post("/contacts", json=contact_body("cy@example.com", tags=["other"]))
    stored = emulator.contact("cy@example.com")
    assert stored is not None and stored["tags"] == ["other"]
    client.post("/contacts", json=contact_body("cy@example.com", firstName="Cy"))
    stored = emulator.contact("cy@example.com")
    assert stored is not None and stored["tags"] == ["other"]


def test_welcome_message_defaults_to_true_for_new_identifiers_only(
    client: httpx.Client, emulator: Emulator
) -> None:
    client.post("/contacts", json={"identifiers": [{"type": "email", "id": "new@example.com"}]})
    client.post("/contacts", json={"identifiers": [{"type": "email", "id": "new@example.com"}]})
    client.post("/contacts", json=contact_body("quiet@example.com"))
    client.post(
        "/contacts", json=contact_body("asked@example.com", identifier={"sendWelcomeMessage": True})
    )
    assert [message.email for message in emulator.welcome_messages()] == [
        "new@example.com",
        "asked@example.com",
    ]


def test_newer_status_wins_and_every_change_is_recorded(
    client: httpx.Client, emulator: Emulator
) -> None:
    emulator.seed_contact(
        "dee@example.com", status="unsubscribed", status_changed_at="2025-06-01T00:00:00Z"
    )
    older = {
        "channels": {"email": {"status": "subscribed", "statusChangedAt": "2025-01-01T00:00:00Z"}}
    }
    client.post("/contacts", json=contact_body("dee@example.com", identifier=older))
    stored = emulator.contact("dee@example.com")
    assert stored is not None and stored["status"] == "unsubscribed"
    assert emulator.status_changes() == []
    newer = {
        "channels": {"email": {"status": "subscribed", "statusChangedAt": "2025-07-01T00:00:00Z"}}
    }
    response = client.post("/contacts", json=contact_body("dee@example.com", identifier=newer))
    assert response.json()["status"] == "subscribed"
    [change] = emulator.status_changes()
    assert (change.email, change.from_status, change.to_status) == (
        "dee@example.com",
        "unsubscribed",
        "subscribed",
    )
    assert change.at == "2025-07-01T00:00:00Z"


def test_status_without_timestamp_counts_as_now(client: httpx.Client, emulator: Emulator) -> None:
    emulator.seed_contact(
        "eve@example.com", status="unsubscribed", status_changed_at="2030-01-01T00:00:00Z"
    )
    no_time = {"channels": {"email": {"status": "subscribed"}}}
    client.post("/contacts", json=contact_body("eve@example.com", identifier=no_time))
    # Stored in the (modelled) future: "now" is older, the unsubscribe stays.
    assert emulator.contact("eve@example.com")["status"] == "unsubscribed"  # type: ignore[index]
    emulator.seed_contact(
        "fay@example.com", status="unsubscribed", status_changed_at="2020-01-01T00:00:00Z"
    )
    client.post("/contacts", json=contact_body("fay@example.com", identifier=no_time))
    assert emulator.contact("fay@example.com")["status"] == "subscribed"  # type: ignore[index]
    assert [c.email for c in emulator.status_changes()] == ["fay@example.com"]


def test_new_contact_with_status_records_a_change_from_none(
    client: httpx.Client, emulator: Emulator
) -> None:
    given = {
        "channels": {"email": {"status": "subscribed", "statusChangedAt": "2025-01-01T10:00:00Z"}}
    }
    response = client.post("/contacts", json=contact_body("gus@example.com", identifier=given))
    assert response.json()["statuses"][0]["statusChangedAt"] == "2025-01-01T10:00:00Z"
    [change] = emulator.status_changes()
    assert (change.from_status, change.to_status) == (None, "subscribed")
    client.post("/contacts", json=contact_body("hal@example.com"))
    assert len(emulator.status_changes()) == 1


def test_get_and_patch_contacts(client: httpx.Client, emulator: Emulator) -> None:
    contact_id = client.post("/contacts", json=contact_body("ida@example.com")).json()["id"]
    assert client.get(f"/contacts/{contact_id}").json()["email"] == "ida@example.com"
    listed = client.get("/contacts", params={"email": "ida@example.com"}).json()
    assert [c["id"] for c in listed["contacts"]] == [contact_id]
    assert client.get("/contacts", params={"email": "IDA@example.com"}).json()["contacts"] == []
    patched = client.patch("/contacts", params={"email": "ida@example.com"}, json={"city": "Riga"})
    assert patched.status_code == 200 and patched.json()["city"] == "Riga"
    by_id = client.patch(f"/contacts/{contact_id}", json={"firstName": "Ida"})
    assert by_id.json()["city"] == "Riga" and by_id.json()["firstName"] == "Ida"
    assert client.patch("/contacts", params={"email": "no@example.com"}, json={}).status_code == 404
    assert client.patch("/contacts/nope", json={"city": "X"}).status_code == 404
    assert client.get("/contacts/nope").status_code == 404
    assert emulator.welcome_messages() == []


def test_a_consent_record_is_kept_each_time_it_is_sent_a_retried_write_too(
    client: httpx.Client, emulator: Emulator
) -> None:
    consent = {"consent": {"createdAt": "2024-05-01T10:00:00Z", "source": "shop"}}
    for _ in range(2):
        client.post("/contacts", json=contact_body("con@example.com", identifier=consent))
    item = contact_body("con@example.com", identifier=consent)
    batch = {"endpoint": "contacts", "method": "POST", "items": [item]}
    assert client.post("/batches", json=batch).status_code == 201
    assert emulator.drain()
    later = {"consent": {"createdAt": "2024-04-01T10:00:00Z", "source": "form"}}
    response = client.post("/contacts", json=contact_body("con@example.com", identifier=later))
    assert [(c["createdAt"], c["source"]) for c in response.json()["consents"]] == [
        ("2024-04-01T10:00:00Z", "form"),
        *[("2024-05-01T10:00:00Z", "shop")] * 3,
    ]


def test_phone_identifiers_are_kept_beside_the_email(
    client: httpx.Client, emulator: Emulator
) -> None:
    body = contact_body("ph@example.com")
    body["identifiers"].append(
        {
            "type": "phone",
            "id": "+37060000001",
            "sendWelcomeMessage": False,
            "channels": {
                "sms": {"status": "subscribed", "statusChangedAt": "2024-01-01T00:00:00Z"}
            },
        }
    )
    contact = client.post("/contacts", json=body).json()
    assert contact["phone"] == ["+37060000001"]
    assert {(s["channel"], s["status"]) for s in contact["statuses"]} == {
        ("email", "nonSubscribed"),
        ("sms", "subscribed"),
    }
    assert [(c.channel, c.to_status) for c in emulator.status_changes()] == [("sms", "subscribed")]
    assert emulator.welcome_messages() == []
    tagged = client.post("/contacts/tags", json={"phones": ["+37060000001"], "tags": ["sms"]})
    assert tagged.status_code == 202
    assert emulator.drain()
    assert emulator.contact("ph@example.com")["tags"] == ["sms"]  # type: ignore[index]


def test_contact_list_pages_by_cursor_newest_first(
    client: httpx.Client, emulator: Emulator
) -> None:
    for index in range(5):
        emulator.seed_contact(f"page{index}@example.com", tags=["even"] if index % 2 == 0 else [])
    first = client.get("/contacts", params={"limit": 2}).json()
    assert [c["email"] for c in first["contacts"]] == ["page4@example.com", "page3@example.com"]
    assert first["paging"]["hasMore"] is True and first["paging"]["limit"] == 2
    assert first["paging"]["cursors"]["before"] is None
    second = client.get(
        "/contacts", params={"limit": 2, "after": first["paging"]["cursors"]["after"]}
    )
    assert [c["email"] for c in second.json()["contacts"]] == [
        "page2@example.com",
        "page1@example.com",
    ]
    back = client.get(
        "/contacts", params={"limit": 2, "before": second.json()["paging"]["cursors"]["before"]}
    )
    assert [c["email"] for c in back.json()["contacts"]] == [
        "page4@example.com",
        "page3@example.com",
    ]
    last = client.get(
        "/contacts", params={"limit": 2, "after": second.json()["paging"]["cursors"]["after"]}
    )
    assert [c["email"] for c in last.json()["contacts"]] == ["page0@example.com"]
    assert (
        last.json()["paging"]["hasMore"] is False
        and last.json()["paging"]["cursors"]["after"] is None
    )
    oldest_first = client.get("/contacts", params={"direction": "asc", "limit": 1}).json()
    assert oldest_first["contacts"][0]["email"] == "page0@example.com"
    tagged = client.get("/contacts", params={"tag": "even"}).json()["contacts"]
    assert sorted(c["email"] for c in tagged) == [
        "page0@example.com",
        "page2@example.com",
        "page4@example.com",
    ]
    assert client.get("/contacts", params={"status": "subscribed"}).json()["contacts"] == []


def test_contact_list_parameters_are_validated(emulator: Emulator) -> None:
    with api_client(emulator, validate_requests=False) as raw:
        for params, field in (
            ({"limit": 251}, "limit"),
            ({"limit": 0}, "limit"),
            ({"after": "not-a-cursor"}, "after"),
            ({"status": "maybe"}, "status"),
            ({"sort": "email"}, "sort"),
        ):
            response = raw.get("/contacts", params=params)
            assert response.status_code == 400, params
            assert response.json()["errors"][0]["field"] == field


def test_patch_cannot_move_a_contact_to_another_email(
    client: httpx.Client, emulator: Emulator
) -> None:
    emulator.seed_contact("one@example.com")
    moved = client.patch(
        "/contacts",
        params={"email": "one@example.com"},
        json={"identifiers": [{"type": "email", "id": "two@example.com"}]},
    )
    assert moved.status_code == 409 and moved.json()["status"] == 409
    emulator.set_faults(failing_emails=["one@example.com"])
    refused = client.patch("/contacts", params={"email": "one@example.com"}, json={"city": "Oslo"})
    assert refused.status_code == 400
    assert emulator.contact("one@example.com").get("city") is None  # type: ignore[union-attr]


def test_an_integer_no_json_writer_can_answer_is_refused(
    client: httpx.Client, emulator: Emulator
) -> None:
    # Seeded in Python (over HTTP such a number arrives as a float): refused as the API
    # refuses a bad field, not stored to answer 500 on every page that lists it.
    with pytest.raises(ValueError, match=r"customProperties\.points"):
        emulator.seed_contact("big@example.com", custom_properties={"points": 2**70})
    emulator.seed_contact("fits@example.com", custom_properties={"points": 2**63 - 1})
    assert client.get("/contacts").status_code == 200
