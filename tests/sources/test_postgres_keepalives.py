"""A PostgreSQL source's connection finds a peer gone silent mid-read in seconds: its
socket, found in this process by the port the server sees it from, carries TCP keepalives
and a user timeout, unless the DSN sets its own."""

from __future__ import annotations

import os
import secrets
import socket

import psycopg
import pytest

from omnisync.sources import PostgresReader

DEFAULTS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20000,
}


def tcp_options_of_session(admin_dsn: str, application_name: str) -> dict[str, int]:
    """The TCP options of this process's socket to the session named ``application_name``."""
    with psycopg.connect(admin_dsn, autocommit=True) as observer:
        row = observer.execute(
            "SELECT client_port FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    assert row is not None
    if row[0] is None or int(str(row[0])) < 0:
        pytest.skip("a Unix-socket connection has no TCP options")
    for descriptor in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{descriptor}").startswith("socket:"):
                continue
        except OSError:  # closed meanwhile (the listing's own descriptor among them)
            continue
        with socket.socket(fileno=os.dup(int(descriptor))) as peer:
            if peer.family in (socket.AF_INET, socket.AF_INET6) and (
                peer.getsockname()[1] == int(str(row[0]))
            ):
                return {
                    "keepalives": int(peer.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0),
                    "keepalives_idle": peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    "keepalives_interval": peer.getsockopt(
                        socket.IPPROTO_TCP, socket.TCP_KEEPINTVL
                    ),
                    "keepalives_count": peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                    "tcp_user_timeout": peer.getsockopt(
                        socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT
                    ),
                }
    raise AssertionError(f"no socket of this process is on port {row[0]}")


@pytest.mark.parametrize(
    ("own", "expected"),
    [
        ("", DEFAULTS),
        (
            " keepalives_idle=7 tcp_user_timeout=9000",
            {**DEFAULTS, "keepalives_idle": 7, "tcp_user_timeout": 9000},
        ),
    ],
)
def test_a_reading_connection_probes_a_silent_peer_unless_the_dsn_says_otherwise(
    postgres_admin_dsn: str, own: str, expected: dict[str, int]
) -> None:
    name = f"omnisync-keepalives-{secrets.token_hex(4)}"
    reader = PostgresReader(
        f"{postgres_admin_dsn} application_name={name}{own}",
        "SELECT 'a@example.com' AS email FROM generate_series(1, 3)",
        segment="vip",
        source="cdp",
        itersize=1,
    )
    rows = reader.rows(["email"])
    try:
        assert next(rows) == ("a@example.com",)  # mid-read: the connection is open
        assert tcp_options_of_session(postgres_admin_dsn, name) == expected
    finally:
        rows.close()
