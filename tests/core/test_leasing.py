"""plan_leases: how replicas divide brands, round by round, as the lease board would."""

from __future__ import annotations

import random

import pytest

from omnisync.leasing import LeasePlan, plan_leases

BRANDS = ("brand-a", "brand-b", "brand-c", "brand-d")


def settle(
    replicas: list[str],
    holders: dict[str, str],
    *,
    brands: tuple[str, ...] = BRANDS,
    rounds: int = 30,
    seed: int = 0,
    busy: dict[str, set[str]] | None = None,
) -> dict[str, str]:
    """Play rounds in a random order per round; an acquisition wins only on a free brand
    (as the database's conditional insert), a release only on one's own lease."""
    order = random.Random(seed)
    holders = dict(holders)
    for _ in range(rounds):
        turn = list(replicas)
        order.shuffle(turn)
        for replica in turn:
            plan = plan_leases(
                replica,
                brands,
                live_replicas=replicas,
                holders=holders,
                busy=(busy or {}).get(replica, set()),
            )
            for brand in plan.release:
                assert holders.get(brand) == replica
                del holders[brand]
            for brand in plan.acquire:
                holders.setdefault(brand, replica)
    return holders


def spread(holders: dict[str, str], replicas: list[str]) -> list[int]:
    return sorted(sum(1 for holder in holders.values() if holder == r) for r in replicas)


@pytest.mark.parametrize("seed", range(20))
def test_replicas_starting_together_spread_four_brands_two_one_one(seed):
    replicas = ["r0", "r1", "r2"]
    holders = settle(replicas, {}, seed=seed)
    assert set(holders) == set(BRANDS)
    assert spread(holders, replicas) == [1, 1, 2]


def test_a_replica_that_joins_gets_a_brand_back_from_the_busiest():
    holders = settle(["r0", "r1"], {})
    assert spread(holders, ["r0", "r1"]) == [2, 2]
    after = settle(["r0", "r1", "r2"], holders)
    assert spread(after, ["r0", "r1", "r2"]) == [1, 1, 2]
    # Only one brand moved: the others stayed where they were.
    assert sum(1 for brand in BRANDS if after[brand] != holders[brand]) == 1


def test_a_dead_replicas_brands_are_shared_out_among_the_rest():
    holders = settle(["r0", "r1", "r2"], {})
    dead = next(r for r in ("r0", "r1", "r2") if list(holders.values()).count(r) == 2)
    alive = [r for r in ("r0", "r1", "r2") if r != dead]
    expired = {brand: holder for brand, holder in holders.items() if holder != dead}
    after = settle(alive, expired)
    assert set(after) == set(BRANDS)
    assert spread(after, alive) == [2, 2]


def test_a_busy_brand_is_never_given_up():
    holders = {brand: "r0" for brand in BRANDS}
    plan = plan_leases("r0", BRANDS, live_replicas=["r0", "r1"], holders=holders, busy=set(BRANDS))
    assert plan == LeasePlan()
    plan = plan_leases(
        "r0", BRANDS, live_replicas=["r0", "r1"], holders=holders, busy={"brand-a", "brand-b"}
    )
    assert set(plan.release) == {"brand-c", "brand-d"}


def test_brands_no_longer_in_the_config_are_released():
    plan = plan_leases(
        "r0", ["brand-a"], live_replicas=["r0"], holders={"brand-a": "r0", "old": "r0"}
    )
    assert plan.release == ("old",)


def test_a_command_holding_a_brand_for_one_run_is_not_a_replica():
    holders = {"brand-a": "cli:host:1"}
    plan = plan_leases("r0", BRANDS, live_replicas=["r0"], holders=holders)
    assert set(plan.acquire) == {"brand-b", "brand-c", "brand-d"}
    assert "brand-a" not in plan.acquire


def test_a_lone_replica_takes_everything():
    assert set(plan_leases("r0", BRANDS, live_replicas=[], holders={}).acquire) == set(BRANDS)
