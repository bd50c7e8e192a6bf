"""The default session's own HTTP/1.1, byte by byte, against a raw loopback server.

What a well-behaved ``http.server`` never sends (chunked answers, interim
answers, answers read until the close, malformed status lines and headers,
cut bodies) is scripted here as raw bytes; what the session sends is read
back as raw bytes too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from omnisync.omnisend.plainhttp import PlainHttpSession
from omnisync.omnisend.session import SessionTransportError
from tests.omnisend.rawserver import RawRequest, RawServer, Reply, answer, dribbled, reply
from tests.omnisend.test_session import API_KEY, HEADERS

ServerFactory = Callable[[Callable[[RawRequest], Reply]], RawServer]


@pytest.fixture
def raw_server() -> Iterator[ServerFactory]:
    started: list[RawServer] = []

    def start(script: Callable[[RawRequest], Reply]) -> RawServer:
        server = RawServer(script)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sessions() -> Iterator[Callable[[RawServer], PlainHttpSession]]:
    opened: list[PlainHttpSession] = []

    def open_for(server: RawServer) -> PlainHttpSession:
        session = PlainHttpSession(server.base_url, headers=HEADERS, timeout=5.0)
        opened.append(session)
        return session

    yield open_for
    for session in opened:
        session.close()


def scripted(first: Reply) -> Callable[[RawRequest], Reply]:
    """``first`` for the first request, then a plain answer naming the connection."""

    def script(request: RawRequest) -> Reply:
        if request.connection == 1 and request.on_connection == 1:
            return first
        return reply(answer(b'{"connection": %d}' % request.connection))

    return script


# -- what goes out -------------------------------------------------------------------


def test_a_request_goes_out_with_the_sessions_head_and_its_length(
    raw_server: ServerFactory, sessions: Callable[[RawServer], PlainHttpSession]
) -> None:
    server = raw_server(lambda request: reply(answer()))
    session = sessions(server)
    session.send("POST", "batches", content=b'{"items": []}')
    session.send("POST", "contacts/tags")
    session.send("GET", "contacts", params={"email": "a@example.com"})
    posted, empty_post, got = server.seen()
    port = server.base_url.split(":")[2].split("/")[0]
    assert posted.request_line == "POST /api/batches HTTP/1.1"
    assert posted.header_lines == [
        f"Host: 127.0.0.1:{port}",
        *(f"{name}: {value}" for name, value in HEADERS.items()),
        "Accept-Encoding: identity",
        "Content-Length: 13",
    ]
    assert posted.body == b'{"items": []}'
    assert empty_post.header("Content-Length") == "0" and empty_post.body == b""
    assert got.request_line == "GET /api/contacts?email=a%40example.com HTTP/1.1"
    assert got.header("Content-Length") is None
    assert {request.connection for request in server.seen()} == {1}


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Note": "a\r\nX-Injected: 1"},
        {"X-Note": "a\nb"},
        {"X-Note": "a\rb"},
        {"Authorization": f"Omnisend-API-Key {API_KEY}\r\nX-Injected: 1"},
        {"Bad Name": "x"},
        {"X-Note:": "x"},
        {"Content-Length": "5"},
    ],
)
def test_a_header_that_would_split_the_request_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError) as caught:
        PlainHttpSession("http://127.0.0.1:9/api", headers=headers, timeout=1.0)
    assert API_KEY not in str(caught.value)  # names the header, never quotes its value
    assert "Injected" not in str(caught.value)


# -- how an answer ends ------------------------------------------------------------


def test_a_chunked_answer_with_extensions_and_trailers_is_read_whole(
    raw_server: ServerFactory, sessions: Callable[[RawServer], PlainHttpSession]
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        b"7;note=first\r\n"
        b'{"a": [\r\n'
        b"A\r\n"
        b"1, 2, 3]}\n\r\n"
        b"0\r\n"
        b"X-Checksum: abc\r\n"
        b"X-Other: 1\r\n"
        b"\r\n"
    )
    server = raw_server(scripted(dribbled(chunked)))
    session = sessions(server)
    first = session.send("GET", "batches")
    assert first.status_code == 200
    assert first.content == b'{"a": [1, 2, 3]}\n' and first.json() == {"a": [1, 2, 3]}
    assert first.headers.get("transfer-encoding") == "chunked"
    # The trailers were read to their end: the next answer on the connection is whole.
    assert session.send("GET", "batches").json() == {"connection": 1}
    assert server.connections == 1


def test_an_answer_without_a_length_is_read_until_the_close_and_the_connection_dropped(
    raw_server: ServerFactory, sessions: Callable[[RawServer], PlainHttpSession]
) -> None:
    until_close = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it, " + b"x" * 70000
    server = raw_server(scripted(Reply((until_close[:100], until_close[100:]), close=True)))
    session = sessions(server)
    assert session.send("GET", "batches").content == b"all of it, " + b"x" * 70000
    assert session.send("GET", "batches").json() == {"connection": 2}
    assert session.send("GET", "batches").json() == {"connection": 2}


@pytest.mark.parametrize(
    ("first", "reused"),
    [
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", False),
        (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n{}", True),
        (b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\n{}", False),
        (b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}", True),
        # Bytes after the answer would be read as the next one's: not reused.
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n", False),
        # Both lengths: chunked counts, and the connection is not trusted again.
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\n{}\r\n0\r\n\r\n",
            False,
        ),
    ],
)
def test_keep_alive_follows_the_version_and_the_connection_header(
    raw_server: ServerFactory,
    sessions: Callable[[RawServer], PlainHttpSession],
    first: bytes,
    reused: bool,
) -> None:
    server = raw_server(scripted(reply(first)))
    session = sessions(server)
    assert session.send("GET", "batches").content == b"{}"
    assert session.send("GET", "batches").json() == {"connection": 1 if reused else 2}


def test_interim_answers_are_skipped(
    raw_server: ServerFactory, sessions: Callable[[RawServer], PlainHttpSession]
) -> None:
    interim = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        + answer(b'{"id": "b-1"}', status="201 Created")
    )
    server = raw_server(scripted(Reply((interim[:30], interim[30:]), pause=0.01)))
    session = sessions(server)
    created = session.send("POST", "batches", content=b"{}")
    assert created.status_code == 201 and created.json() == {"id": "b-1"}
    assert created.headers.get("link") is None  # the interim answer's headers are not the answer's
    assert session.send("GET", "batches").json() == {"connection": 1}


@pytest.mark.parametrize(
    ("method", "status"),
    [("HEAD", "200 OK"), ("GET", "204 No Content"), ("GET", "304 Not Modified")],
)
def test_answers_without_a_body_whatever_their_length_says(
    raw_server: ServerFactory,
    sessions: Callable[[RawServer], PlainHttpSession],
    method: str,
    status: str,
) -> None:
    head = b"HTTP/1.1 %s\r\nContent-Length: 42\r\nX-Total: 7\r\n\r\n" % status.encode()
    server = raw_server(scripted(reply(head)))
    session = sessions(server)
    bodiless = session.send(method, "contacts")
    assert bodiless.content == b"" and bodiless.headers.get("x-total") == "7"
    # Nothing was waited for or consumed: the next answer on the connection is its own.
    assert session.send("GET", "batches").json() == {"connection": 1}


def test_a_folded_header_line_is_unfolded(
    raw_server: ServerFactory, sessions: Callable[[RawServer], PlainHttpSession]
) -> None:
    folded = answer(extra=b"X-Long: first\r\n \t second\r\nX-Next: 2\r\n")
    session = sessions(raw_server(scripted(reply(folded))))
    answered = session.send("GET", "batches")
    assert answered.headers.get("x-long") == "first second"
    assert answered.headers.get("x-next") == "2"


# -- answers that are no HTTP/1.1 ----------------------------------------------------


def assert_transport_error(server: RawServer, session: PlainHttpSession, kind: str) -> None:
    """The first GET fails with ``kind`` in its reason, is not sent again, and the
    connection is not reused."""
    with pytest.raises(SessionTransportError) as caught:
        session.send("GET", "batches")
    assert kind in caught.value.reason
    assert API_KEY not in caught.value.reason
    assert len(server.seen()) == 1
    assert session.send("GET", "batches").json() == {"connection": 2}


@pytest.mark.parametrize(
    "status_line",
    [
        b"HTTP/1.1 OK\r\n",
        b"HTTP/1.1 2OO OK\r\n",
        b"HTTP/1.1 20 OK\r\n",
        b"HTTP/1.1 099 Low\r\n",
        b"HTTP/2 200\r\n",
        b"ICY 200 OK\r\n",
        b"HTTP/1.1  200 OK\r\n",
        b'{"connection": 1}\r\n',
    ],
)
def test_a_malformed_status_line_is_a_transport_error(
    raw_server: ServerFactory,
    sessions: Callable[[RawServer], PlainHttpSession],
    status_line: bytes,
) -> None:
    server = raw_server(scripted(reply(status_line + b"Content-Length: 2\r\n\r\n{}")))
    assert_transport_error(server, sessions(server), "MalformedAnswer")


@pytest.mark.parametrize(
    "header_lines",
    [
        # Malformed header lines.
        b"no colon here\r\n",
        b"Bad Name: x\r\n",
        b"Name : x\r\n",
        b": no name\r\n",
        b"X-Ok: 1\r\n\x00: nul\r\n",
        b"X-Long: " + b"y" * 70000 + b"\r\n",
        b"".join(b"X-Many-%d: 1\r\n" % index for index in range(101)),
        # A body length that is invalid or conflicting, or a coding that cannot be read.
        b"Content-Length: abc\r\n",
        b"Content-Length: -2\r\n",
        b"Content-Length: 2\r\nContent-Length: 3\r\n",
        b"Content-Length: 2, 3\r\n",
        b"Transfer-Encoding: gzip, chunked\r\n",
    ],
)
def test_a_malformed_header_or_body_length_is_a_transport_error(
    raw_server: ServerFactory,
    sessions: Callable[[RawServer], PlainHttpSession],
    header_lines: bytes,
) -> None:
    server = raw_server(scripted(reply(b"HTTP/1.1 200 OK\r\n" + header_lines + b"\r\n{}")))
    assert_transport_error(server, sessions(server), "MalformedAnswer")


def test_agreeing_repeated_lengths_are_one_length(
    raw_server: ServerFactory, sessions: Callable[[RawServer], PlainHttpSession]
) -> None:
    repeated = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\n{}"
    session = sessions(raw_server(scripted(reply(repeated))))
    assert session.send("GET", "batches").content == b"{}"
    assert session.send("GET", "batches").json() == {"connection": 1}


@pytest.mark.parametrize(
    ("cut", "kind"),
    [
        # A chunk shorter than its size, then the close.
        (b"Transfer-Encoding: chunked\r\n\r\nA\r\n1234", "IncompleteRead"),
        # Whole chunks, but never the last one.
        (b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", "IncompleteRead"),
        # The last chunk, but not the end of the trailers.
        (b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-Trailer: 1\r\n", "IncompleteRead"),
        (b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", "MalformedAnswer"),
        (b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}}\r\n0\r\n\r\n", "MalformedAnswer"),
        (b"Content-Length: 10\r\n\r\n1234", "IncompleteRead"),
        (b"Content-Length: 10\r\nX-Cut: 1", "IncompleteRead"),
    ],
)
def test_a_cut_or_malformed_body_is_a_transport_error(
    raw_server: ServerFactory,
    sessions: Callable[[RawServer], PlainHttpSession],
    cut: bytes,
    kind: str,
) -> None:
    server = raw_server(scripted(reply(b"HTTP/1.1 200 OK\r\n" + cut, close=True)))
    assert_transport_error(server, sessions(server), kind)


def test_an_answer_cut_inside_its_status_line_is_not_sent_again(
    raw_server: ServerFactory, sessions: Callable[[RawServer], PlainHttpSession]
) -> None:
    def script(request: RawRequest) -> Reply:
        if request.on_connection == 2 and request.connection == 1:
            return reply(b"HTTP/1.1 2", close=True)  # a byte came back: something answered
        return reply(answer(b'{"connection": %d}' % request.connection))

    server = raw_server(script)
    session = sessions(server)
    session.send("GET", "batches")
    with pytest.raises(SessionTransportError) as caught:
        session.send("GET", "batches")  # on the reused connection, yet not repeated
    assert "IncompleteRead" in caught.value.reason
    assert len(server.seen()) == 2
