"""Which brands a replica should take or give up. Pure.

Replicas sharing a PostgreSQL state store divide the brands (the unit of
Omnisend's rate limits). With ``b`` brands and ``r`` live replicas, each should
hold ``b // r`` or ``⌈b / r⌉``; :func:`plan_leases` moves one replica toward
that, one step per round:

- it takes free brands (no live lease) while it holds fewer than ``b // r``,
  and one more while it holds fewer than ``⌈b / r⌉`` and nobody holds fewer
  than it does;
- it gives up brands it holds beyond ``⌈b / r⌉``, brands no longer in the
  config, and — when another replica has fewer than ``b // r`` (one just
  joined) and it is the busiest (ties: the greatest id) — one brand, so the
  newcomer can take it.

It gives up only *idle* brands (no run under way). Each replica tries free
brands in its own order (a hash of its id and the brand), so replicas starting
together rarely reach for the same one; the database settles any race.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class LeasePlan:
    """Brands to take and to give up this round, in the order to try them."""

    acquire: tuple[str, ...] = ()
    release: tuple[str, ...] = ()


def plan_leases(
    me: str,
    brands: Collection[str],
    *,
    live_replicas: Collection[str],
    holders: Mapping[str, str],
    busy: Collection[str] = (),
) -> LeasePlan:
    """What replica ``me`` should do about leases now.

    ``brands``: the brands the config's exports deliver to. ``live_replicas``:
    replicas whose heartbeat has not expired (``me`` counts whatever it says).
    ``holders``: brand -> holder of every *live* lease. ``busy``: brands on
    which ``me`` has a run under way (never given up).
    """
    wanted = frozenset(brands)
    replicas = frozenset(live_replicas) | {me}
    # Holders that are not replicas (a command's one direct run) hold, but count for nobody.
    counts = Counter(
        holder for brand, holder in holders.items() if brand in wanted and holder in replicas
    )
    for replica in replicas:
        counts.setdefault(replica, 0)
    mine = sorted(brand for brand, holder in holders.items() if holder == me)
    idle = [brand for brand in mine if brand not in busy]
    low, high = divmod(len(wanted), len(replicas))
    high = low + (1 if high else 0)

    release = [brand for brand in idle if brand not in wanted]
    held = len(mine) - len(release)
    spare = [brand for brand in idle if brand in wanted]
    if held > high:
        release += spare[: held - high]
    elif held > low and spare and _busiest(me, counts) and min(counts.values()) < low:
        release.append(spare[0])
    if release:
        return LeasePlan(release=tuple(release))

    free = sorted(
        (brand for brand in wanted if brand not in holders), key=lambda brand: _order(me, brand)
    )
    take = max(0, low - held)
    if held + take < high and all(counts[other] >= held + take for other in replicas - {me}):
        take += 1
    return LeasePlan(acquire=tuple(free[:take]))


def _busiest(me: str, counts: Mapping[str, int]) -> bool:
    most = max(counts.values())
    return counts[me] == most and me == max(r for r, count in counts.items() if count == most)


def _order(me: str, brand: str) -> bytes:
    return hashlib.blake2b(f"{me}\0{brand}".encode(), digest_size=8).digest()
