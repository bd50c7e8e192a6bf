"""The client pool: one client per connection, shared limiter per brand, keys re-resolved."""

from __future__ import annotations

import dataclasses

import pytest

from omnisync.clock import FakeClock
from omnisync.config.model import RateLimit
from omnisync.config.secrets import SecretUnavailable
from omnisync.engine.clients import ClientPool
from omnisync.omnisend.errors import ApiError
from omnisync.omnisend.pacing import LimiterRegistry
from tests.engine.conftest import Setup
from tests.engine.helpers import API_KEY_VARIABLE


def test_a_connection_gets_one_shared_client(setup: Setup) -> None:
    shop = setup.config().connections["shop"]
    environ = {API_KEY_VARIABLE: "test-key", "OTHER_KEY": "other-key"}
    registry = LimiterRegistry(clock=setup.clock)
    with ClientPool(clock=setup.clock, environ=environ, registry=registry) as pool:
        client = pool.client_for(shop)
        assert pool.client_for(shop) is client
        # Another connection of the same brand has its own client but the brand's limiter.
        twin = dataclasses.replace(shop, name="shop-twin")
        assert pool.client_for(twin) is not client
        assert len(registry) == 1
        other_brand = dataclasses.replace(
            shop, name="outlet", api_key=dataclasses.replace(shop.api_key, name="OTHER_KEY")
        )
        pool.client_for(other_brand)
        assert len(registry) == 2


def test_a_reloaded_lower_rate_limit_paces_the_brand_at_once(setup: Setup) -> None:
    # The daemon keeps one pool across reloads. An operator lowers rate_limit because
    # Omnisend answered 429: the brand's shared limiter must take the new limits, not
    # keep the ones it was first asked for until a restart.
    shop = setup.config().connections["shop"]
    clock = FakeClock()
    registry = LimiterRegistry(clock=clock)
    limits = shop.rate_limit
    with ClientPool(clock=clock, environ={API_KEY_VARIABLE: "test-key"}, registry=registry) as pool:
        before = pool.client_for(shop)
        # The brand's limiter, as the pool asked for it (same brand, same limits).
        limiter = registry.limiter(
            shop.base_url,
            "test-key",
            requests_per_minute=limits.requests_per_minute,
            tags_per_minute=limits.tags_per_minute,
        )
        lowered = dataclasses.replace(
            shop, rate_limit=RateLimit(requests_per_minute=2, tags_per_minute=1)
        )
        assert pool.client_for(lowered) is not before
        assert len(registry) == 1
        # Under the old limits (400 and 60) none of these would wait.
        assert limiter.acquire("tags").waited == 0.0
        assert limiter.acquire("tags").waited == 60.5  # 1 tags call a minute, and the margin
        assert limiter.acquire("general").waited == 0.0
        assert limiter.acquire("general").waited == 60.5  # 2 requests a minute
        assert clock.now() == 121.0


def test_a_rotated_key_gets_a_fresh_client(setup: Setup) -> None:
    shop = setup.config().connections["shop"]
    environ = {API_KEY_VARIABLE: "test-key"}
    with ClientPool(clock=setup.clock, environ=environ) as pool:
        first = pool.client_for(shop)
        environ[API_KEY_VARIABLE] = "wrong-key"
        second = pool.client_for(shop)
        assert second is not first
        assert "wrong-key" not in repr(second)
        # The old client still works for a run that was using it.
        assert first.get_contact("nobody@example.com") is None


def test_secret_problems_are_named_without_the_value(setup: Setup) -> None:
    shop = setup.config().connections["shop"]
    with (
        ClientPool(clock=setup.clock, environ={}) as pool,
        pytest.raises(SecretUnavailable) as missing,
    ):
        pool.client_for(shop)
    assert API_KEY_VARIABLE in str(missing.value)
    with (
        ClientPool(clock=setup.clock, environ={API_KEY_VARIABLE: "has spaces"}) as pool,
        pytest.raises(SecretUnavailable) as malformed,
    ):
        pool.client_for(shop)
    assert "has spaces" not in str(malformed.value)


def test_requests_are_counted_while_a_run_counts(setup: Setup) -> None:
    shop = setup.config().connections["shop"]
    with ClientPool(clock=setup.clock, environ={API_KEY_VARIABLE: "test-key"}) as pool:
        client = pool.client_for(shop)
        client.get_contact("before@example.com")
        with pool.counting(client) as counter:
            client.get_contact("a@example.com")
            client.get_contact("b@example.com")
        client.get_contact("after@example.com")
    assert counter.requests == 2


def test_a_run_counts_the_requests_of_its_own_client_after_a_key_rotation(setup: Setup) -> None:
    shop = setup.config().connections["shop"]
    environ = {API_KEY_VARIABLE: "test-key"}
    with ClientPool(clock=setup.clock, environ=environ) as pool:
        client = pool.client_for(shop)
        environ[API_KEY_VARIABLE] = "rotated-key"  # between a run's start and its sending
        with pool.counting(client) as counter:
            client.get_contact("a@example.com")
            client.get_contact("b@example.com")
            with pytest.raises(ApiError):  # another run's request, with the new key
                pool.client_for(shop).get_contact("c@example.com")
    assert counter.requests == 2
