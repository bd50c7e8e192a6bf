"""Authentication, versioning, unknown paths and methods, and validation problems."""

from __future__ import annotations

import json
import re

import httpx

from omnisync.emulator import Emulator
from tests.emulator.conftest import API_KEY, HEADERS, api_client, contact_body
from tests.openapi_contract import ValidatingTransport

INSTANCE = re.compile(r"urn:omnisend:request:[0-9a-f-]{36}")


def raw_client(emulator: Emulator, headers: dict[str, str]) -> httpx.Client:
    """No default headers: each test sends exactly what it means to."""
    return httpx.Client(
        base_url=emulator.base_url,
        headers=headers,
        transport=ValidatingTransport(validate_requests=False),
    )


def test_missing_or_wrong_key_is_401_without_echoing_the_key(emulator: Emulator) -> None:
    version = {"Omnisend-Version": "2026-03-15"}
    for headers in (
        version,
        {**version, "Authorization": "Omnisend-API-Key wrong-secret-key"},
        {**version, "Authorization": f"Bearer {API_KEY}"},
    ):
        with raw_client(emulator, headers) as client:
            response = client.post("/contacts", json=contact_body("a@example.com"))
        assert response.status_code == 401
        assert response.json()["status"] == 401
        assert INSTANCE.fullmatch(response.json()["instance"])
        assert "wrong-secret-key" not in response.text and API_KEY not in response.text
    assert emulator.contact_count() == 0
    assert {r.status for r in emulator.request_log()} == {401}


def test_version_header_missing_is_400_and_other_versions_are_410(emulator: Emulator) -> None:
    auth = {"Authorization": HEADERS["Authorization"]}
    with raw_client(emulator, auth) as client:
        missing = client.get("/batches", params={"endpoint": "contacts"})
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["field"] == "Omnisend-Version"
    for version in ("2024-01-01", "v5"):
        with raw_client(emulator, {**auth, "Omnisend-Version": version}) as client:
            retired = client.get("/batches", params={"endpoint": "contacts"})
        assert retired.status_code == 410
        assert version in retired.json()["detail"]


def test_unknown_paths_ids_and_methods(client: httpx.Client, emulator: Emulator) -> None:
    with api_client(emulator, validate_requests=False) as raw:
        unknown = raw.get("/products")
        assert unknown.status_code == 404 and unknown.json()["status"] == 404
        wrong_method = raw.delete("/batches")
        assert wrong_method.status_code == 405
        assert wrong_method.headers["Allow"] == "POST, GET"
        assert raw.get("/contacts/tags").status_code == 405
    assert client.get("/batches/5f92cbf10cf217478ba93561").status_code == 404
    assert client.get("/contacts/5f92cbf10cf217478ba93561").status_code == 404
    outside = httpx.get(emulator.url + "/v3/contacts", headers=HEADERS)
    assert outside.status_code == 404


def test_a_body_that_is_not_json_is_400(emulator: Emulator) -> None:
    with api_client(emulator, validate_requests=False) as client:
        response = client.post(
            "/contacts", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_format"


def test_a_body_nested_deeper_than_can_be_written_back_is_400(emulator: Emulator) -> None:
    """orjson reads 1024 levels but writes 255: a batch item nested deeper, once taken,
    made its batch's items answer 500 for ever."""
    deep: list[object] = []
    for _ in range(260):
        deep = [deep]
    item = {**contact_body("deep@example.com"), "note": deep}
    bodies = {
        "/contacts": item,
        "/batches": {"endpoint": "contacts", "method": "POST", "items": [item]},
        "/contacts/tags": {"emails": ["deep@example.com"], "tags": ["t"], "note": deep},
    }
    with api_client(emulator, validate_requests=False) as client:
        for path, body in bodies.items():
            response = client.post(path, json=body)
            assert response.status_code == 400, (path, response.text)
            assert response.json()["errors"] == [
                {"field": "", "message": "The body is nested too deeply", "code": "invalid_format"}
            ]
        assert client.get("/batches", params={"endpoint": "contacts"}).json()["batches"] == []


def test_a_body_not_sent_as_application_json_is_400_naming_the_header(
    emulator: Emulator,
) -> None:
    """The OpenAPI documents list no 415: a 400 whose error names the header."""
    body = json.dumps(contact_body("ct@example.com")).encode()
    with api_client(emulator, validate_requests=False) as client:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {} if content_type is None else {"Content-Type": content_type}
            response = client.post("/contacts", content=body, headers=headers)
            assert response.status_code == 400, content_type
            [error] = response.json()["errors"]
            assert error["field"] == "Content-Type", content_type
        with_charset = {"Content-Type": "Application/JSON; charset=utf-8"}
        assert client.post("/contacts", content=body, headers=with_charset).status_code == 201
        # A request without a body needs no Content-Type.
        assert client.get("/batches", params={"endpoint": "contacts"}).status_code == 200
    assert emulator.contact_count() == 1


def test_every_failing_field_is_reported_at_once(emulator: Emulator) -> None:
    body = {
        "identifiers": [
            {
                "type": "email",
                "id": "not an email",
                "channels": {"email": {"status": "maybe", "statusChangedAt": "yesterday"}},
                "sendWelcomeMessage": "no",
            }
        ],
        "firstName": "x" * 129,
        "countryCode": "lt",
        "gender": "x",
        "birthdate": "1990-13-01",
        "tags": [f"t{i}" for i in range(101)],
        "customProperties": {
            "bad name": "v",
            "long_value": "v" * 2049,
            "nested": {"a": 1},
        },
    }
    with api_client(emulator, validate_requests=False) as client:
        response = client.post("/contacts", json=body)
    assert response.status_code == 400
    problem = response.json()
    assert problem["title"] and problem["detail"] and INSTANCE.fullmatch(problem["instance"])
    assert {(e["field"], e["code"]) for e in problem["errors"]} == {
        ("identifiers[0].id", "invalid_format"),
        ("identifiers[0].channels.email.status", "invalid_format"),
        ("identifiers[0].channels.email.statusChangedAt", "invalid_format"),
        ("identifiers[0].sendWelcomeMessage", "invalid_format"),
        ("firstName", "too_long"),
        ("countryCode", "invalid_format"),
        ("gender", "invalid_format"),
        ("birthdate", "invalid_format"),
        ("tags", "too_long"),
        ("customProperties.bad name", "invalid_format"),
        ("customProperties.long_value", "too_long"),
        ("customProperties.nested", "invalid_format"),
    }
    assert all(e["message"] for e in problem["errors"])
    assert emulator.contact_count() == 0


def test_identifiers_are_required_and_custom_properties_are_capped(emulator: Emulator) -> None:
    with api_client(emulator, validate_requests=False) as client:
        no_identifiers = client.post("/contacts", json={"firstName": "A"})
        assert [(e["field"], e["code"]) for e in no_identifiers.json()["errors"]] == [
            ("identifiers", "required")
        ]
        phone_only = client.post(
            "/contacts", json={"identifiers": [{"type": "phone", "id": "+37060000000"}]}
        )
        assert [(e["field"], e["code"]) for e in phone_only.json()["errors"]] == [
            ("identifiers", "required")
        ]
        many = {f"p{i}": "v" for i in range(201)}
        too_many = client.post(
            "/contacts", json=contact_body("a@example.com", customProperties=many)
        )
        assert [(e["field"], e["code"]) for e in too_many.json()["errors"]] == [
            ("customProperties", "too_long")
        ]
        exactly = {f"p{i}": "v" * 2048 for i in range(200)}
        assert (
            client.post(
                "/contacts", json=contact_body("a@example.com", customProperties=exactly)
            ).status_code
            == 201
        )


def test_instances_are_fresh_per_answer(emulator: Emulator) -> None:
    with api_client(emulator, validate_requests=False) as client:
        first = client.get("/nowhere").json()["instance"]
        second = client.get("/nowhere").json()["instance"]
    assert first != second


def test_country_code_wins_over_country_and_names_are_derived(client: httpx.Client) -> None:
    both = client.post(
        "/contacts", json=contact_body("c1@example.com", country="Latvia", countryCode="LT")
    ).json()
    assert (both["countryCode"], both["country"]) == ("LT", "Lithuania")
    only_name = client.post(
        "/contacts", json=contact_body("c2@example.com", country="Estonia")
    ).json()
    assert (only_name["countryCode"], only_name["country"]) == ("EE", "Estonia")
