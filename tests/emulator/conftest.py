"""Fixtures: a running emulator, a fake clock, and an httpx client that checks every exchange
against OpenAPI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from omnisync.clock import FakeClock
from omnisync.emulator import Emulator
from tests.openapi_contract import ValidatingTransport

API_KEY = "test-key"
HEADERS = {"Authorization": f"Omnisend-API-Key {API_KEY}", "Omnisend-Version": "2026-03-15"}


def api_client(
    emulator: Emulator, *, api_key: str = API_KEY, validate_requests: bool = True, **headers: str
) -> httpx.Client:
    """A client whose every request and response is checked against the OpenAPI documents."""
    all_headers = {**HEADERS, "Authorization": f"Omnisend-API-Key {api_key}", **headers}
    return httpx.Client(
        base_url=emulator.base_url,
        headers=all_headers,
        transport=ValidatingTransport(validate_requests=validate_requests),
        timeout=10.0,
    )


def contact_body(email: str, **fields: Any) -> dict[str, Any]:
    """A minimal valid contact body (no welcome message unless asked)."""
    identifier: dict[str, Any] = {"type": "email", "id": email, "sendWelcomeMessage": False}
    if "identifier" in fields:
        identifier.update(fields.pop("identifier"))
    return {"identifiers": [identifier], **fields}


@pytest.fixture
def emulator(start_emulator: Callable[..., Emulator]) -> Emulator:
    return start_emulator(api_keys=(API_KEY,), batch_delay=0.0, tag_delay=0.0)


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    with api_client(emulator) as validating_client:
        yield validating_client


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
