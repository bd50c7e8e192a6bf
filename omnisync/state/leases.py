"""The coordination tables of a shared PostgreSQL state store: :class:`LeaseBoard`.

Replicas sharing one database agree through it: who is alive (``replicas``), who holds which
brand (``brand_leases``, each with a fencing token from the sequence ``lease_tokens``), which
scheduled fires were claimed (``schedule_fires``) and which on-demand runs were asked for
(``run_requests``). Every expiry is computed with the database's clock, so replicas whose
clocks disagree still agree on who holds what.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from omnisync.state.postgres import PostgresDatabase


@dataclass(frozen=True)
class LeaseRow:
    """One brand's lease: ``live`` while it has not expired, in ``seconds_left`` (the
    database's clock; ``0`` once expired)."""

    brand: str
    holder: str
    live: bool
    seconds_left: float = 0.0


@dataclass(frozen=True)
class ReplicaRow:
    """One replica as the board knows it; ``live`` while its heartbeat has not expired."""

    id: str
    started_at: datetime
    seen_at: datetime
    live: bool
    version: str
    config_revision: str
    running: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "running", tuple(self.running))  # a JSON array read back


@dataclass(frozen=True)
class Board:
    """Everything :func:`omnisync.leasing.plan_leases` needs, read in one transaction."""

    replicas: tuple[ReplicaRow, ...]
    leases: tuple[LeaseRow, ...]


@dataclass(frozen=True)
class RunRequest:
    """An on-demand run asked for with ``omnisync export run`` against a shared store."""

    id: int
    export: str
    trigger: str
    claimed_by: str | None
    run_id: int | None
    answer: Mapping[str, Any] | None


class LeaseBoard(PostgresDatabase):
    """Replicas, leases, fires and run requests in the database at ``dsn``. A connection
    of its own: renewing a lease never waits behind a run's large write on the store's."""

    # -- replicas --------------------------------------------------------------------

    def heartbeat(
        self,
        replica: str,
        *,
        lease_seconds: float,
        version: str,
        config_revision: str,
        running: Collection[str],
    ) -> None:
        """Say ``replica`` is alive for ``lease_seconds`` more, and what it is running."""
        with self.transaction("record this replica's heartbeat") as connection:
            connection.execute(
                "INSERT INTO replicas (id, started_at, seen_at, expires_at, version, "
                "config_revision, running) VALUES (%s, now(), now(), "
                "now() + make_interval(secs => %s), %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET seen_at = now(), "
                "expires_at = excluded.expires_at, version = excluded.version, "
                "config_revision = excluded.config_revision, running = excluded.running",
                (replica, lease_seconds, version, config_revision, Jsonb(sorted(running))),
            )

    def retire(self, replica: str) -> int:
        """A clean stop: drop ``replica`` and release every lease it holds (returns how many)."""
        with self.transaction("release this replica's leases") as connection:
            cursor = connection.execute("DELETE FROM brand_leases WHERE holder = %s", (replica,))
            connection.execute("DELETE FROM replicas WHERE id = %s", (replica,))
            return max(cursor.rowcount, 0)

    def board(self) -> Board:
        """Replicas and leases as of now (one snapshot); dead replicas long gone are pruned."""
        with self.transaction("read the replicas and their leases") as connection:
            # A replica silent for a day will not come back under that name.
            connection.execute("DELETE FROM replicas WHERE expires_at < now() - interval '1 day'")
            replicas = connection.cursor(row_factory=class_row(ReplicaRow)).execute(
                "SELECT id, started_at, seen_at, expires_at > now() AS live, version, "
                'config_revision, running FROM replicas ORDER BY id COLLATE "C"'
            )
            leases = connection.cursor(row_factory=class_row(LeaseRow)).execute(
                "SELECT brand, holder, expires_at > now() AS live, greatest(0, "
                "extract(epoch FROM expires_at - now()))::float8 AS seconds_left "
                'FROM brand_leases ORDER BY brand COLLATE "C"'
            )
            return Board(replicas=tuple(replicas), leases=tuple(leases))

    def replica_live(self, replica: str) -> bool:
        """Whether ``replica``'s heartbeat is current (``False`` once expired, or retired)."""
        with self.transaction("read a replica's heartbeat") as connection:
            row = connection.execute(
                "SELECT expires_at > now() FROM replicas WHERE id = %s", (replica,)
            ).fetchone()
        return bool(row is not None and row[0])

    # -- leases -----------------------------------------------------------------------

    def acquire(self, brand: str, holder: str, *, lease_seconds: float) -> int | None:
        """Take ``brand`` when nobody holds it (or its lease expired): the new token, or ``None``.
        Every acquisition gets a new, larger token: writes fenced with an older one are refused
        from this moment on."""
        with self.transaction("take a brand's lease") as connection:
            # A lease row locked by a stuck writer must not stall this replica's round.
            connection.execute("SET LOCAL lock_timeout = '1s'")
            row = connection.execute(
                "INSERT INTO brand_leases AS l (brand, holder, token, acquired_at, renewed_at, "
                "expires_at) VALUES (%(brand)s, %(holder)s, nextval('lease_tokens'), now(), "
                "now(), now() + make_interval(secs => %(lease)s)) "
                "ON CONFLICT (brand) DO UPDATE SET holder = excluded.holder, "
                "token = excluded.token, acquired_at = now(), renewed_at = now(), "
                "expires_at = excluded.expires_at WHERE l.expires_at <= now() "
                "RETURNING token",
                {"brand": brand, "holder": holder, "lease": lease_seconds},
            ).fetchone()
        return None if row is None else int(cast(int, row[0]))

    def renew(
        self, holder: str, tokens: Mapping[str, int], *, lease_seconds: float
    ) -> dict[str, int]:
        """Extend the leases ``holder`` holds with these tokens; returns those still held. A
        lease that expired but that nobody took over is still ``holder``'s (its token is
        unchanged, so nobody else wrote): it is renewed too."""
        if not tokens:
            return {}
        with self.transaction("renew this replica's leases") as connection:
            rows = connection.execute(
                "UPDATE brand_leases SET renewed_at = now(), "
                "expires_at = now() + make_interval(secs => %s) "
                "WHERE holder = %s AND (brand, token) IN "
                "(SELECT * FROM unnest(%s::text[], %s::bigint[])) RETURNING brand, token",
                (lease_seconds, holder, list(tokens), list(tokens.values())),
            ).fetchall()
        return {str(brand): int(cast(int, token)) for brand, token in rows}

    def release(self, brand: str, holder: str, token: int) -> bool:
        """Give ``brand`` up (it was idle); ``False`` when it was no longer ours."""
        with self.transaction("release a brand's lease") as connection:
            cursor = connection.execute(
                "DELETE FROM brand_leases WHERE brand = %s AND holder = %s AND token = %s",
                (brand, holder, token),
            )
            return cursor.rowcount > 0

    # -- scheduled fires ------------------------------------------------------------

    def claim_fire(self, export: str, fire_time: str, replica: str) -> bool:
        """Claim the scheduled fire ``fire_time`` of ``export``: ``True`` for the one claimant."""
        with self.transaction("claim a scheduled run") as connection:
            cursor = connection.execute(
                "INSERT INTO schedule_fires (export, fire_time, replica, claimed_at) "
                "VALUES (%s, %s, %s, now()) ON CONFLICT DO NOTHING",
                (export, fire_time, replica),
            )
            # Fires older than a week are history enough (runs keep the rest).
            connection.execute(
                "DELETE FROM schedule_fires WHERE export = %s "
                "AND claimed_at < now() - interval '7 days'",
                (export,),
            )
            return cursor.rowcount > 0

    # -- on-demand runs -----------------------------------------------------------------

    def request_run(self, export: str, brand: str, *, trigger: str) -> int:
        """Ask whichever replica holds ``brand`` to run ``export``; returns the request id."""
        with self.transaction("ask for a run") as connection:
            row = connection.execute(
                "INSERT INTO run_requests (export, brand, trigger, requested_at) "
                "VALUES (%s, %s, %s, now()) RETURNING id",
                (export, brand, trigger),
            ).fetchone()
            # Claimed over a week ago: answered, or orphaned by a replica that died while
            # its requester waited (which stopped waiting); runs keep the rest.
            connection.execute(
                "DELETE FROM run_requests WHERE claimed_at < now() - interval '7 days'"
            )
        assert row is not None
        return int(cast(int, row[0]))

    def claim_requests(self, brands: Collection[str], replica: str) -> list[RunRequest]:
        """Claim the unclaimed requests for ``brands`` (this replica holds them), oldest first."""
        if not brands:
            return []
        with self.transaction("take on-demand runs") as connection:
            rows = connection.cursor(row_factory=class_row(RunRequest)).execute(
                "UPDATE run_requests SET claimed_by = %s, claimed_at = now() WHERE id IN "
                "(SELECT id FROM run_requests WHERE claimed_by IS NULL AND brand = ANY(%s) "
                f"ORDER BY id FOR UPDATE SKIP LOCKED) RETURNING {_REQUEST_COLUMNS}",
                (replica, list(brands)),
            )
            return sorted(rows, key=lambda request: request.id)

    def answer_request(
        self, request_id: int, *, answer: Mapping[str, Any], run_id: int | None = None
    ) -> None:
        """Record what became of a request (``answer``: status, error, counts...)."""
        with self.transaction("answer an on-demand run") as connection:
            connection.execute(
                "UPDATE run_requests SET answer = %s, run_id = coalesce(%s, run_id), "
                "answered_at = now() WHERE id = %s",
                (Jsonb(dict(answer)), run_id, request_id),
            )

    def request(self, request_id: int) -> RunRequest | None:
        with self.transaction("read an on-demand run") as connection:
            requests = connection.cursor(row_factory=class_row(RunRequest))
            return requests.execute(
                f"SELECT {_REQUEST_COLUMNS} FROM run_requests WHERE id = %s", (request_id,)
            ).fetchone()

    def withdraw_request(self, request_id: int) -> bool:
        """Take back a request nobody claimed (``False`` once claimed)."""
        with self.transaction("withdraw an on-demand run") as connection:
            cursor = connection.execute(
                "DELETE FROM run_requests WHERE id = %s AND claimed_by IS NULL", (request_id,)
            )
            return cursor.rowcount > 0


_REQUEST_COLUMNS = "id, export, trigger, claimed_by, run_id, answer"
