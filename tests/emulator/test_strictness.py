"""As strict as the published documents: malformed input is a 400, every batch item counts.

Each case sends real HTTP to the emulator. The requests are deliberately
malformed, so the client validates only the answers against OpenAPI.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from omnisync.emulator import Emulator
from tests.emulator.conftest import api_client, contact_body


def batch(items: list[Any], **extra: Any) -> dict[str, Any]:
    return {"endpoint": "contacts", "method": "POST", "items": items, **extra}


def problem_fields(response: httpx.Response) -> set[tuple[str, str]]:
    """The (field, code) pairs of a 400 problem document."""
    assert response.status_code == 400, response.text
    document = response.json()
    assert document["status"] == 400 and document["instance"] and document["title"]
    return {(error["field"], error["code"]) for error in document["errors"]}


def test_a_batch_envelope_of_the_wrong_json_types_is_400(emulator: Emulator) -> None:
    with api_client(emulator, validate_requests=False) as client:
        method = client.post("/batches", json={**batch([contact_body("a@x.io")]), "method": {}})
        assert problem_fields(method) == {("method", "invalid_format")}
        endpoint = client.post("/batches", json={**batch([contact_body("a@x.io")]), "endpoint": {}})
        assert problem_fields(endpoint) == {("endpoint", "invalid_format")}
        listed = client.post("/batches", json=batch([contact_body("a@x.io")], method=["POST"]))
        assert problem_fields(listed) == {("method", "invalid_format")}
        null_item = client.post("/batches", json=batch([None]))
        assert problem_fields(null_item) == {("items[0]", "invalid_format")}
        mixed = client.post("/batches", json=batch([contact_body("a@x.io"), None, "x", []]))
        assert problem_fields(mixed) == {
            ("items[1]", "invalid_format"),
            ("items[2]", "invalid_format"),
            ("items[3]", "invalid_format"),
        }
    assert emulator.batches() == []
    assert {record.status for record in emulator.request_log()} == {400}


def test_a_status_of_the_wrong_json_type_is_400(emulator: Emulator) -> None:
    statuses: list[Any] = [{}, [], ["subscribed"]]
    for status in statuses:
        body = contact_body("a@x.io", identifier={"channels": {"email": {"status": status}}})
        with api_client(emulator, validate_requests=False) as client:
            response = client.post("/contacts", json=body)
        assert problem_fields(response) == {
            ("identifiers[0].channels.email.status", "invalid_format")
        }
    assert emulator.contact_count() == 0


def test_other_values_of_the_wrong_json_type_are_400(emulator: Emulator) -> None:
    emulator.set_faults(failing_emails=["f@x.io"])  # the fault's check meets the same values
    body = {
        "identifiers": [{"type": {}, "id": {"a": 1}, "channels": {"email": {"status": {}}}}],
        "gender": ["m"],
        "countryCode": {},
        "firstName": {},
    }
    with api_client(emulator, validate_requests=False) as client:
        response = client.post("/contacts", json=body)
        assert ("countryCode", "invalid_format") in problem_fields(response)
        assert ("gender", "invalid_format") in problem_fields(response)
        tags = client.post("/contacts/tags", json={"emails": "a@x.io", "tags": [{}]})
        assert problem_fields(tags) == {("emails", "invalid_format"), ("tags[0]", "invalid_format")}
    seeded = httpx.post(
        emulator.url + "/_emulator/contacts", json={"email": "s@x.io", "status": {}}
    )
    assert seeded.status_code == 400 and "status" in seeded.json()["error"]


def test_times_are_rfc_3339_and_dates_yyyy_mm_dd(emulator: Emulator) -> None:
    """Not whatever ``datetime.fromisoformat`` reads: RFC 3339 (section 5.6), ``T`` and
    ``Z`` in either case; a full-date for ``birthdate``."""
    refused = (
        "2024-01-01 00:00:00+00:00",
        "20240101T000000+0000",
        "2024-W01-1T00:00:00+00:00",
        "2024-01-01T00+00:00:00",
        "2024-01-01T00:00:00+00",
        "2024-01-01T00:00:00",
    )
    accepted = ("2024-01-01t00:00:00z", "2024-01-01T00:00:00.123456789+02:00")
    with api_client(emulator, validate_requests=False) as client:
        for number, moment in enumerate(refused + accepted):
            channel = {"status": "subscribed", "statusChangedAt": moment}
            identifier = {"channels": {"email": channel}, "consent": {"createdAt": moment}}
            body = contact_body(f"t{number}@x.io", identifier=identifier, createdAt=moment)
            response = client.post("/contacts", json=body)
            if moment in accepted:
                assert response.status_code == 201, (moment, response.text)
            else:
                assert problem_fields(response) == {
                    ("identifiers[0].channels.email.statusChangedAt", "invalid_format"),
                    ("identifiers[0].consent.createdAt", "invalid_format"),
                    ("createdAt", "invalid_format"),
                }, moment
        for birthdate, status in (("2024-W01-1", 400), ("20240101", 400), ("2024-01-01", 201)):
            body = contact_body("born@x.io", birthdate=birthdate)
            assert client.post("/contacts", json=body).status_code == status, birthdate


def test_a_contact_holds_at_most_200_custom_properties_once_merged(emulator: Emulator) -> None:
    full = contact_body("cp@x.io", customProperties={f"a{i}": i for i in range(200)})
    one_more = contact_body("cp@x.io", customProperties={"a0": "kept", "b0": 1})
    with api_client(emulator, validate_requests=False) as client:
        contact_id = client.post("/contacts", json=full).json()["id"]
        assert problem_fields(client.post("/contacts", json=one_more)) == {
            ("customProperties", "too_long")
        }
        patch = client.patch(f"/contacts/{contact_id}", json={"customProperties": {"b0": 1}})
        assert problem_fields(patch) == {("customProperties", "too_long")}
        created = client.post("/batches", json=batch([one_more]))
        assert emulator.drain()
        items = client.get(f"/batches/{created.json()['batchID']}/items").json()
        [error] = items["errors"][0]["response"]["errors"]
        assert (error["field"], error["code"]) == ("customProperties", "too_long")
        # Names it already holds are updated, not added.
        assert client.post("/contacts", json={**one_more, "customProperties": {"a1": 2}}).is_success
    stored = emulator.contact("cp@x.io")
    assert stored is not None and len(stored["customProperties"]) == 200


def test_an_invalid_item_is_counted_and_the_next_items_are_processed(
    emulator: Emulator, client: httpx.Client
) -> None:
    items = [
        contact_body("first@x.io"),
        contact_body("second@x.io", identifier={"channels": {"email": {"status": {}}}}),
        contact_body("third@x.io", firstName="Third"),
    ]
    with api_client(emulator, validate_requests=False) as raw:
        created = raw.post("/batches", json=batch(items))
    assert created.status_code == 201
    assert emulator.drain()
    result = client.get(f"/batches/{created.json()['batchID']}/items").json()
    assert (result["status"], result["totalCount"]) == ("finished", 3)
    assert (result["finishedCount"], result["errorsCount"]) == (3, 1)
    [error] = result["errors"]
    assert error["request"] == items[1] and error["responseCode"] == 400
    assert [e["request"]["identifiers"][0]["id"] for e in result["responses"]] == [
        "first@x.io",
        "third@x.io",
    ]
    assert emulator.contact("third@x.io")["firstName"] == "Third"  # type: ignore[index]
    assert emulator.contact("second@x.io") is None


def test_a_batch_with_more_than_half_of_its_items_failing_is_stopped(
    emulator: Emulator, client: httpx.Client
) -> None:
    bad = {"countryCode": "ZZ"}
    three = [contact_body("b1@x.io", **bad), contact_body("b2@x.io", **bad)]
    three.append(contact_body("never@x.io"))
    stopped_id = client.post("/batches", json=batch(three)).json()["batchID"]
    half = [contact_body(f"h{i}@x.io", **(bad if i < 2 else {})) for i in range(4)]
    half_id = client.post("/batches", json=batch(half)).json()["batchID"]
    assert emulator.drain()
    stopped = client.get(f"/batches/{stopped_id}/items").json()
    assert (stopped["status"], stopped["finishedCount"], stopped["errorsCount"]) == (
        "stopped",
        2,
        2,
    )
    assert "endedAt" in stopped and stopped["responses"] == []
    assert emulator.contact("never@x.io") is None
    # Exactly half is not more than half: every item is processed.
    finished = client.get(f"/batches/{half_id}").json()
    assert (finished["status"], finished["finishedCount"], finished["errorsCount"]) == (
        "finished",
        4,
        2,
    )
    listed = client.get("/batches", params={"endpoint": "contacts", "status": "stopped"}).json()
    assert [b["batchID"] for b in listed["batches"]] == [stopped_id]


def test_a_country_code_must_exist(emulator: Emulator) -> None:
    with api_client(emulator, validate_requests=False) as client:
        for code in ("ZZ", "XX", "lt", "LTU", 44):
            response = client.post("/contacts", json=contact_body("c@x.io", countryCode=code))
            assert problem_fields(response) == {("countryCode", "invalid_format")}, code
        assert emulator.contact_count() == 0
        created = client.post("/contacts", json=contact_body("c@x.io", countryCode="UA"))
    assert created.status_code == 201
    assert (created.json()["countryCode"], created.json()["country"]) == ("UA", "Ukraine")


def test_a_put_batch_is_accepted_and_applied(emulator: Emulator, client: httpx.Client) -> None:
    emulator.seed_contact("old@x.io", fields={"firstName": "Old"})
    items = [contact_body("old@x.io", firstName="New"), contact_body("put@x.io")]
    created = client.post("/batches", json=batch(items, method="PUT"))
    assert created.status_code == 201
    assert emulator.drain()
    done = client.get(f"/batches/{created.json()['batchID']}/items").json()
    assert (done["method"], done["status"], done["finishedCount"]) == ("PUT", "finished", 2)
    assert [r["responseCode"] for r in done["responses"]] == [200, 201]
    assert emulator.contact("old@x.io")["firstName"] == "New"  # type: ignore[index]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["", "a@x.io", "POST", "LT"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = st.sampled_from(
    ["identifiers", "type", "id", "channels", "email", "status", "statusChangedAt", "consent",
     "sendWelcomeMessage", "countryCode", "country", "tags", "customProperties", "birthdate",
     "gender", "createdAt", "firstName"]
)  # fmt: skip
#: Contact-like bodies: the field names the rules read, holding any JSON at all.
_CONTACTS = st.recursive(
    _JSON, lambda inner: st.dictionaries(_FIELDS, inner, max_size=5) | st.lists(inner, max_size=2)
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=_CONTACTS,
    envelope=st.dictionaries(st.sampled_from(["endpoint", "method", "origin"]), _JSON),
)
# Found by this test in CI: identifiers that are not a list answered 500.
@example(body={"identifiers": 1}, envelope={})
@example(body={"identifiers": "a@x.io"}, envelope={})
def test_no_malformed_body_gets_a_500(emulator: Emulator, body: Any, envelope: Any) -> None:
    emulator.configure(rate_limits=False)
    batch_ids = []
    with api_client(emulator, validate_requests=False) as client:
        for path, sent in (
            ("/contacts", body),
            ("/batches", batch([body])),
            ("/batches", {"items": [contact_body("a@x.io")], **envelope}),
            ("/contacts/tags", body),
        ):
            response = client.post(
                path, content=json.dumps(sent), headers={"Content-Type": "application/json"}
            )
            assert response.status_code in (200, 201, 202, 400), (path, sent, response.text)
            if path == "/batches" and response.status_code == 201:
                batch_ids.append(response.json()["batchID"])
        assert emulator.drain()
        for batch_id in batch_ids:
            result = client.get(f"/batches/{batch_id}/items").json()
            assert result["finishedCount"] == result["totalCount"] == 1
            assert {e["responseCode"] for e in result["errors"]} <= {400}, result["errors"]
