"""The PostgreSQL store's connection: it outlives a reset while idle, and a peer gone
silent is found in seconds (TCP keepalives and tcp_user_timeout, read back from libpq and
from the kernel's socket)."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo

from omnisync.state.leases import LeaseBoard
from omnisync.state.postgres import PostgresConnection, PostgresDatabase
from tests.conftest import require_postgres
from tests.state.backends import PostgresBackend

#: What the store's connections get unless their DSN says otherwise.
DEFAULTS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20000,
}


@pytest.fixture
def backend(tmp_path: Path) -> PostgresBackend:
    opened = PostgresBackend(tmp_path)
    opened.open().close()  # migrated
    return opened


def backend_pid(database: PostgresDatabase) -> int:
    with database.transaction("read its backend's pid") as connection:
        row = connection.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(str(row[0]))


def terminate(pid: int) -> None:
    """End backend ``pid`` from another session, as a restart or a DBA would, and wait
    (up to 5 s) until it has ended."""
    with psycopg.connect(require_postgres(), autocommit=True) as admin:
        row = admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
    assert row == (True,)


def tcp_options(connection: PostgresConnection) -> dict[str, int]:
    """The keepalive and user-timeout options of ``connection``'s socket, from the kernel."""
    with socket.socket(fileno=os.dup(connection.pgconn.socket)) as peer:
        if peer.family == socket.AF_UNIX:
            pytest.skip("a Unix-socket connection has no TCP options")
        return {
            "keepalives": int(peer.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0),
            "keepalives_idle": peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            "keepalives_interval": peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            "keepalives_count": peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            "tcp_user_timeout": peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        }


class ForgetfulRelay:
    """A TCP relay to PostgreSQL that forgets its connections as a NAT does when its idle
    timeout expires: without a word to the client, who learns it (a reset) when it next
    sends. Connections made afterwards go through."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._forgotten: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # the listener closed
            while True:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self._target)
                self._sockets += [client, upstream]
                threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
                threading.Thread(target=self._down, args=(client, upstream), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if client in self._forgotten:  # no mapping any more: a reset
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    client.close()
                    return
                upstream.sendall(data)

    def _down(self, client: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                client.sendall(data)

    def forget(self) -> None:
        """Drop every connection open now: the server's side ends, the client hears nothing."""
        for client, upstream in zip(self._sockets[::2], self._sockets[1::2], strict=True):
            self._forgotten.add(client)
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()
        for opened in self._sockets:
            opened.close()


@pytest.fixture
def relay(backend: PostgresBackend) -> Iterator[ForgetfulRelay]:
    parts = conninfo.conninfo_to_dict(backend.dsn)
    host = str(parts.get("hostaddr") or parts.get("host") or "")
    if not host or host.startswith("/"):
        pytest.skip("the test server is reached through a Unix socket: nothing to relay")
    opened = ForgetfulRelay((host, int(str(parts.get("port") or 5432))))
    yield opened
    opened.close()


def test_a_backend_terminated_is_replaced_before_the_next_transaction_however_soon(
    backend: PostgresBackend,
) -> None:
    # The server says it is ending the session: no pause is needed to look.
    database = PostgresDatabase(backend.dsn, idle_check_seconds=3600)
    try:
        first = backend_pid(database)
        terminate(first)
        second = backend_pid(database)  # the old code: StateError, "terminating connection"
        assert second != first
        terminate(second)
        with database.transaction("count the ledger") as connection:
            assert connection.execute("SELECT count(*) FROM ledger_entries").fetchone() == (0,)
    finally:
        database.close()


def test_a_connection_forgotten_by_a_nat_is_replaced_after_a_pause(
    backend: PostgresBackend, relay: ForgetfulRelay
) -> None:
    dsn = conninfo.make_conninfo(backend.dsn, host="127.0.0.1", hostaddr="", port=relay.port)
    database = PostgresDatabase(dsn, idle_check_seconds=0)  # a pause long enough
    try:
        first = backend_pid(database)
        relay.forget()
        second = backend_pid(database)  # the old code: StateError, "server closed the connection"
        assert second != first
    finally:
        database.close()


def test_a_clean_stop_releases_its_leases_right_after_the_server_restarted(
    backend: PostgresBackend,
) -> None:
    board = LeaseBoard(backend.dsn)
    try:
        assert board.acquire("brand-a", "r0", lease_seconds=30) is not None
        terminate(backend_pid(board))
        assert board.retire("r0") == 1  # the old code: lease_release_failed
        assert board.board().leases == ()
    finally:
        board.close()


def test_connections_probe_a_silent_peer_unless_the_dsn_says_otherwise(
    backend: PostgresBackend,
) -> None:
    defaulted = PostgresDatabase(backend.dsn)
    own = PostgresDatabase(f"{backend.dsn} keepalives_idle=7 tcp_user_timeout=9000")
    try:
        with defaulted.transaction("read its parameters") as connection:
            parameters = connection.info.get_parameters()
            assert {key: int(parameters[key]) for key in DEFAULTS} == DEFAULTS
            assert tcp_options(connection) == DEFAULTS
        with own.transaction("read its parameters") as connection:
            parameters = connection.info.get_parameters()
            mine = {**DEFAULTS, "keepalives_idle": 7, "tcp_user_timeout": 9000}
            assert {key: int(parameters[key]) for key in DEFAULTS} == mine
            assert tcp_options(connection) == mine
        # The engine's diff reads on a connection of its own: it has them too.
        with defaulted.dedicated_connection("read its options") as connection:
            assert tcp_options(connection) == DEFAULTS
    finally:
        defaulted.close()
        own.close()


def test_the_stores_connections_say_they_are_omnisyncs_unless_the_dsn_names_them(
    backend: PostgresBackend,
) -> None:
    defaulted = PostgresDatabase(backend.dsn)
    own = PostgresDatabase(f"{backend.dsn} application_name=ledger-a")
    try:
        for database, name in ((defaulted, "omnisync"), (own, "ledger-a")):
            with database.transaction("read its name") as connection:
                row = connection.execute("SELECT current_setting('application_name')").fetchone()
            assert row == (name,)
        with defaulted.dedicated_connection("read its name") as connection:
            row = connection.execute("SELECT current_setting('application_name')").fetchone()
        assert row == ("omnisync",)
    finally:
        defaulted.close()
        own.close()
