"""Per-brand sliding-window limits: 429 RateLimitProblem with retryAfter and no headers."""

from __future__ import annotations

import httpx

from omnisync.clock import FakeClock, ScaledClock
from omnisync.emulator import Emulator
from tests.emulator.conftest import api_client, contact_body

TAGS = {"emails": ["a@example.com"], "tags": ["vip"]}


def assert_rate_limited(response: httpx.Response, retry_after: int | None = None) -> None:
    assert response.status_code == 429
    body = response.json()
    assert body["status"] == 429 and isinstance(body["retryAfter"], int)
    assert body["retryAfter"] >= 1
    if retry_after is not None:
        assert body["retryAfter"] == retry_after
    assert "retry-after" not in response.headers
    assert not [name for name in response.headers if name.lower().startswith("x-rate-limit")]


def test_tags_limit_counts_against_both_windows_and_slides() -> None:
    clock = FakeClock()
    with Emulator(clock=clock, requests_per_minute=5, tags_per_minute=2) as emulator:
        with api_client(emulator) as client:
            assert client.post("/contacts/tags", json=TAGS).status_code == 202
            clock.advance(10)
            assert client.post("/contacts/tags", json=TAGS).status_code == 202
            assert_rate_limited(client.post("/contacts/tags", json=TAGS), retry_after=50)
            # The overall window still has room: 2 of 5 used, 429s not counted.
            assert client.get("/batches", params={"endpoint": "contacts"}).status_code == 200
            clock.advance(49.5)
            assert_rate_limited(client.post("/contacts/tags", json=TAGS), retry_after=1)
            clock.advance(0.5)
            assert client.post("/contacts/tags", json=TAGS).status_code == 202
            # The call at 0 has left the window: it holds 10 (tag), 10 (list) and 60 (tag).
            assert client.post("/contacts", json=contact_body("a@example.com")).status_code == 201
            assert client.post("/contacts", json=contact_body("b@example.com")).status_code == 201
            assert_rate_limited(client.post("/contacts", json=contact_body("c@example.com")))
        assert emulator.contact("c@example.com") is None, "a rejected request is not processed"
        counts = emulator.counts()
        assert counts["rate_limited"] == 3
        assert counts["by_endpoint"]["POST /contacts/tags"] == {"202": 3, "429": 2}


def test_retry_after_is_the_wait_until_the_window_admits_one_more() -> None:
    clock = FakeClock()
    with Emulator(clock=clock, requests_per_minute=3) as emulator, api_client(emulator) as client:
        for _ in range(3):
            assert client.get("/batches", params={"endpoint": "contacts"}).status_code == 200
            clock.advance(7.25)
        # Oldest at 0 leaves the window at 60; now is 21.75 -> 38.25 s -> 39.
        assert_rate_limited(client.get("/batches", params={"endpoint": "contacts"}), retry_after=39)
        clock.advance(38.25)
        assert client.get("/batches", params={"endpoint": "contacts"}).status_code == 200
        assert_rate_limited(client.get("/batches", params={"endpoint": "contacts"}), retry_after=8)


def test_the_window_recovers_in_real_time_under_a_scaled_clock() -> None:
    clock = ScaledClock(60)
    with Emulator(clock=clock, requests_per_minute=10) as emulator, api_client(emulator) as client:
        for _ in range(10):
            assert client.get("/batches", params={"endpoint": "contacts"}).status_code == 200
        limited = client.get("/batches", params={"endpoint": "contacts"})
        assert_rate_limited(limited)
        retry_after = limited.json()["retryAfter"]
        assert retry_after <= 60
        clock.sleep(retry_after)
        assert client.get("/batches", params={"endpoint": "contacts"}).status_code == 200


def test_keys_of_one_brand_share_limits_and_brands_do_not() -> None:
    clock = FakeClock()
    keys = {"key-1": "shop", "key-2": "shop", "key-3": "other"}
    with Emulator(keys, clock=clock, requests_per_minute=2) as emulator:
        with (
            api_client(emulator, api_key="key-1") as first,
            api_client(emulator, api_key="key-2") as second,
            api_client(emulator, api_key="key-3") as other,
        ):
            assert first.post("/contacts", json=contact_body("s@example.com")).status_code == 201
            assert second.get("/contacts", params={"email": "s@example.com"}).json()["contacts"]
            assert_rate_limited(first.get("/batches", params={"endpoint": "contacts"}))
            assert_rate_limited(second.get("/batches", params={"endpoint": "contacts"}))
            assert (
                other.get("/contacts", params={"email": "s@example.com"}).json()["contacts"] == []
            )
        assert emulator.brands() == ["other", "shop"]
        assert {r.brand for r in emulator.request_log() if r.key == "key-2"} == {"shop"}


def test_limits_can_be_switched_off_and_on() -> None:
    clock = FakeClock()
    with (
        Emulator(clock=clock, rate_limits=False, requests_per_minute=2) as emulator,
        api_client(emulator) as client,
    ):
        for _ in range(20):
            assert client.get("/batches", params={"endpoint": "contacts"}).status_code == 200
        emulator.configure(rate_limits=True)
        assert client.get("/batches", params={"endpoint": "contacts"}).status_code == 200
        assert client.get("/batches", params={"endpoint": "contacts"}).status_code == 200
        assert_rate_limited(client.get("/batches", params={"endpoint": "contacts"}))
