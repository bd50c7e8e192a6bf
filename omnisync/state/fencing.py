"""Fencing tokens: a write by a replica that no longer holds its brand is refused.

A replica holds a brand through a row of ``brand_leases`` carrying a token
that grows with every new holder (:mod:`omnisync.state.leases`). Every write
of a run on a shared store starts with :func:`check_fence`, in the write's own
transaction: it share-locks the lease row, so a takeover (which updates that
row) waits for the write to commit, and a write after a takeover finds
another token and is refused before it changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from omnisync.state.store import StateError

if TYPE_CHECKING:
    from omnisync.state.postgres_database import PostgresConnection


class LeaseLost(StateError):
    """This replica no longer holds the brand's lease: the write was refused, nothing changed."""


@dataclass(frozen=True)
class Fence:
    """The lease a run's writes must still hold: ``holder`` has ``brand`` under ``token``."""

    brand: str
    holder: str
    token: int


def check_fence(connection: PostgresConnection, fence: Fence) -> None:
    """Raise :class:`LeaseLost` unless ``fence`` still holds; call first in a write transaction."""
    row = connection.execute(
        "SELECT holder, token FROM brand_leases WHERE brand = %s FOR SHARE", (fence.brand,)
    ).fetchone()
    if row is None or row[0] != fence.holder or int(str(row[1])) != fence.token:
        now_held = "nobody" if row is None else f"{row[0]} (token {row[1]})"
        raise LeaseLost(
            f"replica {fence.holder} no longer holds brand {fence.brand} "
            f"(its token {fence.token}; now held by {now_held}): write refused"
        )
