"""The shared contract helper: it accepts what the documents allow and refuses the rest."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.openapi_contract import (
    ValidatingTransport,
    find_operation,
    validate_request,
    validate_response,
)


def test_concrete_paths_match_templates_literal_segments_first() -> None:
    assert find_operation("GET", "/batches/abc/items").template == "/batches/{batchID}/items"
    assert find_operation("POST", "/contacts/tags").template == "/contacts/tags"
    assert find_operation("DELETE", "/api/contacts/tags").template == "/contacts/tags"
    assert find_operation("GET", "/api/contacts/6123?x=1").template == "/contacts/{id}"


def test_unknown_path_and_wrong_method_are_refused() -> None:
    with pytest.raises(AssertionError, match="no OpenAPI path template"):
        find_operation("GET", "/products")
    with pytest.raises(AssertionError, match="not for DELETE"):
        find_operation("DELETE", "/batches/abc")


def test_valid_contact_request_passes_and_every_bad_field_is_named() -> None:
    validate_request(
        "POST",
        "/contacts",
        {
            "identifiers": [{"type": "email", "id": "a@example.com", "sendWelcomeMessage": False}],
            "firstName": "Ann",
            "customProperties": {"anything_goes": 1},
        },
    )
    with pytest.raises(AssertionError) as raised:
        validate_request(
            "POST",
            "/contacts",
            {"identifiers": [{"type": "fax", "id": 5}], "gender": "x", "tagz": []},
        )
    message = str(raised.value)
    assert "$.identifiers[0].type" in message
    assert "$.identifiers[0].id" in message
    assert "$.gender" in message
    assert "tagz" in message


def test_strict_mode_refuses_undeclared_properties_and_can_be_relaxed() -> None:
    body = {"identifiers": [{"type": "email", "id": "a@example.com", "sendWelcomeMessages": False}]}
    with pytest.raises(AssertionError, match="sendWelcomeMessages"):
        validate_request("POST", "/contacts", body)
    validate_request("POST", "/contacts", body, strict=False)


def test_query_and_header_parameters() -> None:
    headers = {"Authorization": "Omnisend-API-Key k", "Omnisend-Version": "2026-03-15"}
    validate_request("GET", "/batches?endpoint=contacts&limit=250", headers=headers)
    with pytest.raises(AssertionError, match="'endpoint' is missing"):
        validate_request("GET", "/batches?limit=5")
    with pytest.raises(AssertionError, match="not one of"):
        validate_request("GET", "/batches?endpoint=contacts&status=done")
    with pytest.raises(AssertionError, match="not an integer"):
        validate_request("GET", "/batches?endpoint=contacts&limit=many")
    with pytest.raises(AssertionError, match="Omnisend-Version"):
        validate_request("GET", "/contacts/abc", headers={"Authorization": "x"})
    with pytest.raises(AssertionError, match="Authorization"):
        validate_request("GET", "/contacts/abc", headers={"Omnisend-Version": "2026-03-15"})


def test_responses_are_checked_by_status_with_problem_fallbacks() -> None:
    validate_response("POST", "/batches", 201, {"batchID": "b1", "totalCount": 3})
    validate_response("POST", "/contacts/tags", 202, None)
    validate_response(
        "POST", "/batches", 429, {"type": "t", "title": "x", "status": 429, "retryAfter": 3}
    )
    validate_response("GET", "/nowhere", 404, {"type": "t", "title": "Not Found", "status": 404})
    with pytest.raises(AssertionError, match="retryAfter"):
        validate_response("POST", "/batches", 429, {"status": 429, "retryAfter": "soon"})
    with pytest.raises(AssertionError, match="not documented"):
        validate_response("POST", "/batches", 200, {"batchID": "b1"})
    with pytest.raises(AssertionError, match="body is empty"):
        validate_response("GET", "/batches/b1", 200, None)
    with pytest.raises(AssertionError, match="no OpenAPI path template"):
        validate_response("GET", "/nowhere", 200, {})


class _FixedHandler(BaseHTTPRequestHandler):
    reply: bytes = b"{}"
    status = 200

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.reply)))
        self.end_headers()
        self.wfile.write(self.reply)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fixed_server() -> Iterator[tuple[str, type[_FixedHandler]]]:
    handler = type("Handler", (_FixedHandler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api", handler
    server.shutdown()
    server.server_close()


def test_transport_validates_both_directions(fixed_server: tuple[str, type[_FixedHandler]]) -> None:
    base_url, handler = fixed_server
    headers = {"Authorization": "Omnisend-API-Key k", "Omnisend-Version": "2026-03-15"}
    transport = ValidatingTransport()
    with httpx.Client(base_url=base_url, transport=transport, headers=headers) as client:
        handler.reply = json.dumps({"batchID": "b", "totalCount": 1}).encode()
        handler.status = 201
        response = client.post(
            "/batches", json={"endpoint": "contacts", "method": "POST", "items": [{}]}
        )
        assert response.json() == {"batchID": "b", "totalCount": 1}
        assert transport.exchanges == 1
        with pytest.raises(AssertionError, match="items"):
            client.post("/batches", json={"endpoint": "contacts", "method": "POST", "items": []})
        handler.reply = json.dumps({"batchID": 7}).encode()
        with pytest.raises(AssertionError, match="batchID"):
            client.post("/batches", json={"endpoint": "contacts", "method": "POST", "items": [1]})
        assert transport.exchanges == 1
