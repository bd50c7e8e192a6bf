"""read_headers gives exactly what http.client.parse_headers gives, errors included."""

from __future__ import annotations

import http.client
import io
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from omnisync.emulator.httpparse import MAX_HEADERS, parse_head, read_headers
from omnisync.emulator.httpserver import head_end

_PIECES = st.sampled_from(
    ["Content-Length", "x", "B-", ":", ": ", " ", "\t", "\r", "\n", "é", "\x80", "\x00", "From "]
)
_LINES = st.lists(
    st.tuples(st.lists(_PIECES, max_size=6), st.sampled_from(["\r\n", "\n"])),
    max_size=MAX_HEADERS + 2,
)


def parsed(parse: object, raw: bytes) -> object:
    try:
        message = parse(io.BytesIO(raw))  # type: ignore[operator]
    except http.client.HTTPException as error:
        return type(error)
    return (
        message.items(),
        [type(defect) for defect in message.defects],
        message.get_payload(),
        message.get("content-length"),
    )


@settings(max_examples=400, deadline=None)
@given(lines=_LINES)
def test_headers_are_read_as_the_standard_library_reads_them(
    lines: list[tuple[list[str], str]],
) -> None:
    text = "".join("".join(pieces) + end for pieces, end in lines) + "\r\n"
    raw = text.encode("latin-1", errors="replace") + b'{"body": true}'
    assert parsed(read_headers, raw) == parsed(http.client.parse_headers, raw)


def test_a_plain_header_block_and_the_limits() -> None:
    raw = b"Host: x\r\nAuthorization: Omnisend-API-Key k \r\nContent-Length: 2\r\n\r\n{}"
    stream = io.BytesIO(raw)
    message = read_headers(stream)
    assert message.items() == [
        ("Host", "x"),
        ("Authorization", "Omnisend-API-Key k "),
        ("Content-Length", "2"),
    ]
    assert stream.read() == b"{}"  # the body is left where it was
    too_long = b"X: " + b"y" * 70_000 + b"\r\n\r\n"
    assert parsed(read_headers, too_long) is http.client.LineTooLong
    too_many = b"X: y\r\n" * (MAX_HEADERS + 1) + b"\r\n"
    assert parsed(read_headers, too_many) is http.client.HTTPException


_HEAD_PIECES = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b"GET / HTTP/1.1", b":"]))


@settings(max_examples=500, deadline=None)
@given(pieces=_HEAD_PIECES)
def test_head_end_finds_what_the_regular_expression_finds(pieces: list[bytes]) -> None:
    buffer = b"".join(pieces)
    found = re.search(rb"\r?\n\r?\n", buffer)
    assert head_end(buffer) == (found.end() if found is not None else -1)


def test_header_lines_read_again_from_memory_give_the_same_headers() -> None:
    head = (
        b"POST /api/batches HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Authorization: Omnisend-API-Key k \r\nhost: second\r\n\r\n"
    )
    first, again = parse_head(head), parse_head(head)  # the second from remembered lines
    assert first == again
    assert first.headers == {
        "host": "x",
        "content-length": "2",
        "authorization": "Omnisend-API-Key k ",
    }
    assert first.version == (1, 1)
    assert parse_head(b"GET / HTTP/1.0\r\nX:\r\n\r\n").headers == {"x": ""}
