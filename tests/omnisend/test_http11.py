"""The wire module on its own: one connection over a socket pair, and the request bytes."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from omnisync.omnisend.http11 import Connection, RemoteDisconnected, RequestEncoder


@pytest.fixture
def pair() -> Iterator[tuple[Connection, socket.socket]]:
    """A client :class:`Connection` and the server's end of its socket."""
    client, server = socket.socketpair()
    client.settimeout(5)
    connection = Connection(client)
    yield connection, server
    connection.close()
    server.close()


def test_an_answer_read_until_the_close_says_the_connection_is_done(
    pair: tuple[Connection, socket.socket],
) -> None:
    connection, server = pair
    server.sendall(b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nthe rest")
    server.shutdown(socket.SHUT_WR)
    answer, keep_alive = connection.read_answer(head_only=False)
    assert answer.content == b"the rest" and keep_alive is False


def test_bytes_after_an_answer_make_the_connection_unusable(
    pair: tuple[Connection, socket.socket],
) -> None:
    connection, server = pair
    server.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n")
    answer, keep_alive = connection.read_answer(head_only=False)
    assert answer.content == b"{}" and keep_alive is False
    assert connection.reusable() is False


def test_a_kept_alive_connection_is_reusable_until_the_server_closes_it(
    pair: tuple[Connection, socket.socket],
) -> None:
    connection, server = pair
    server.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    answer, keep_alive = connection.read_answer(head_only=False)
    assert answer.status_code == 200 and keep_alive is True
    assert connection.reusable() is True
    server.close()
    assert connection.reusable() is False
    with pytest.raises(RemoteDisconnected):
        connection.read_answer(head_only=False)


def test_answers_arrive_through_one_buffer_across_reads(
    pair: tuple[Connection, socket.socket],
) -> None:
    connection, server = pair
    # Two answers in one write: the second waits in the buffer for its request.
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
    second = b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nb"
    server.sendall(first + second)
    assert connection.read_answer(head_only=False)[0].content == b"a"
    answer, keep_alive = connection.read_answer(head_only=False)
    assert (answer.status_code, answer.content, keep_alive) == (201, b"b", True)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\nX-A:  1 \nContent-Length: 3\n\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 3\r\n\n",
        b"HTTP/1.1 200 OK\nX-A:1\r\nContent-Length: 3\n\r\n",
    ],
)
def test_bare_line_feeds_are_read_as_line_ends(
    pair: tuple[Connection, socket.socket], head: bytes
) -> None:
    connection, server = pair
    # The body starts with a line break: the head must end exactly where it does.
    server.sendall(head + b"\r\n{")
    answer, keep_alive = connection.read_answer(head_only=False)
    assert answer.headers.get("x-a") == "1" and answer.content == b"\r\n{" and keep_alive


@pytest.mark.parametrize(
    ("host", "port", "default_port", "expected"),
    [
        ("api.omnisend.com", 443, 443, b"Host: api.omnisend.com\r\n"),
        ("127.0.0.1", 8080, 80, b"Host: 127.0.0.1:8080\r\n"),
        ("::1", 8443, 443, b"Host: [::1]:8443\r\n"),
    ],
)
def test_the_host_header_names_the_port_only_when_not_the_default(
    host: str, port: int, default_port: int, expected: bytes
) -> None:
    encoder = RequestEncoder(host, port, default_port=default_port, headers={"Accept": "*/*"})
    request = encoder.encode("GET", "/api/batches", body=None)
    assert request == (
        b"GET /api/batches HTTP/1.1\r\n" + expected + b"Accept: */*\r\n"
        b"Accept-Encoding: identity\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("method", "target"),
    [("GET", "/api/a b"), ("GET", "/api/a\r\nX: 1"), ("GE T", "/api"), ("GET", "/api/ä")],
)
def test_a_request_line_that_would_split_is_refused(method: str, target: str) -> None:
    encoder = RequestEncoder("127.0.0.1", 80, default_port=80, headers={})
    with pytest.raises(ValueError):
        encoder.encode(method, target, body=None)


def test_folded_lines_join_the_line_before(pair: tuple[Connection, socket.socket]) -> None:
    connection, server = pair
    server.sendall(
        b"HTTP/1.1 200 OK\r\n\tstray: fold\r\nX-A: one\r\n two\r\n\tthree\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    answer, keep_alive = connection.read_answer(head_only=False)
    assert answer.headers.get("x-a") == "one two three" and answer.headers.get("stray") is None
    assert answer.content == b"{}" and keep_alive
