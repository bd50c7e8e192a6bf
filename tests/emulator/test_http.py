"""The HTTP shell on raw connections: HTTP/1.1 keep-alive, refusals that close, clean shutdown."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from omnisync.emulator import Emulator
from tests.emulator.conftest import HEADERS

LIST = b"GET /api/batches?endpoint=contacts HTTP/1.1\r\nHost: x\r\n" + b"".join(
    f"{name}: {value}\r\n".encode() for name, value in HEADERS.items()
)


@contextmanager
def connection(emulator: Emulator) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5.0) as sock:
        yield sock


def answer(sock: socket.socket, request: bytes) -> tuple[http.client.HTTPResponse, bytes]:
    sock.sendall(request)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response, response.read()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed (a read returns nothing; a hang raises on the timeout)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_requests_share_one_kept_alive_http_1_1_connection(emulator: Emulator) -> None:
    with connection(emulator) as sock:
        for _ in range(3):
            response, body = answer(sock, LIST + b"\r\n")
            assert (response.version, response.status) == (11, 200)
            assert int(response.headers["Content-Length"]) == len(body)
            assert json.loads(body)["batches"] == []
            assert response.headers.get("Connection") is None
        response, _ = answer(sock, LIST + b"Connection: close\r\n\r\n")
        assert response.status == 200 and response.headers["Connection"] == "close"
        assert closed_by_server(sock)
    assert len(emulator.request_log()) == 4


def test_bodies_the_server_will_not_read_are_refused_and_the_connection_closed(
    emulator: Emulator,
) -> None:
    post = LIST.replace(b"GET /api/batches?endpoint=contacts", b"POST /api/contacts")
    for extra, status in (
        (b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 411),
        (b"Content-Length: two\r\n\r\n{}", 400),
        (b"Content-Length: 99999999\r\n\r\n{}", 413),
    ):
        with connection(emulator) as sock:
            response, body = answer(sock, post + extra)
            assert response.status == status, extra
            assert json.loads(body)["status"] == status
            assert response.headers["Connection"] == "close"
            assert closed_by_server(sock)
    assert emulator.contact_count() == 0


def test_what_the_standard_library_cannot_parse_answers_a_problem(emulator: Emulator) -> None:
    for request, status in (
        (b"BREW /api/contacts HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"GET /api/contacts HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /api/contacts HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
    ):
        with connection(emulator) as sock:
            response, body = answer(sock, request)
            assert response.status == status, request[:20]
            problem = json.loads(body)
            assert problem["status"] == status and problem["instance"]
            assert closed_by_server(sock)
    assert emulator.request_log() == []


def test_stopping_closes_idle_kept_alive_connections() -> None:
    emulator = Emulator().start()
    try:
        with connection(emulator) as sock:
            response, _ = answer(sock, LIST + b"\r\n")
            assert response.status == 200
            emulator.stop()
            assert closed_by_server(sock)
    finally:
        emulator.stop()
    emulator.stop()  # twice is fine
