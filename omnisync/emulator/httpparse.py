"""Parsing a request's head (request line and header block), fast for well-formed ones (pure).

:func:`parse_head` turns the bytes of one request head into a
:class:`RequestHead`, or raises :class:`BadRequest` with the status
``http.server`` answers for the same fault (400 for a bad request line, 414
for one over 64 KiB, 431 for a header line over 64 KiB or more than 100
lines, 505 for HTTP/2 and later).

Header lines of the plain ``Name: value`` form (nearly all of them) are read
directly. A block with any other line (a folded line, a line without a name)
goes to :func:`read_headers`, which reads exactly as ``http.client`` does (its
limits, its errors, the ``email`` parser for what is not plain); a property
test holds the two together.
"""

from __future__ import annotations

import email.parser
import http.client
import io
import re
from dataclasses import dataclass
from typing import BinaryIO

#: http.client's limits: the longest header line, the most header lines.
MAX_LINE = 65536
MAX_HEADERS = 100

#: A plain header line, as the email parser reads one: a name of printable
#: ASCII other than ":", a colon, the value (leading blanks are not part of
#: it, trailing ones are), and no line break but the one ending the line.
_PLAIN = re.compile(r"([\x21-\x39\x3b-\x7e]+):[ \t]*([^\r\n]*)\r?\n")
#: The same for one line of bytes without its final line feed.
_PLAIN_BYTES = re.compile(rb"([\x21-\x39\x3b-\x7e]+):[ \t]*([^\r\n]*)\r?")


class BadRequest(Exception):
    """A request head that cannot be served: answer ``status`` and close the connection."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A parsed request head.

    ``headers`` maps lower-case names to values; of a repeated header, the
    first value counts (as ``HTTPMessage.get`` reads it).
    """

    method: str
    target: str
    version: tuple[int, int]
    headers: dict[str, str]


def parse_head(head: bytes) -> RequestHead:
    """Parse ``head``: the request line and header lines, up to and including the empty line.

    Raises :class:`BadRequest`.
    """
    line_end = head.find(b"\n")
    if line_end < 0:
        raise BadRequest(400, "The request head has no line break")
    if line_end + 1 > MAX_LINE:
        raise BadRequest(414, "The request line is too long")
    words = head[:line_end].decode("iso-8859-1").split()
    if len(words) != 3:
        raise BadRequest(400, "Bad request syntax: expected METHOD TARGET HTTP/1.1")
    method, target, version_text = words
    version = _version(version_text)
    return RequestHead(method, target, version, _headers(head[line_end + 1 :]))


def _version(text: str) -> tuple[int, int]:
    """``HTTP/1.1`` -> (1, 1), checked as ``http.server`` checks it."""
    known = _VERSIONS.get(text)
    if known is not None:
        return known
    numbers = text[5:].split(".") if text.startswith("HTTP/") else []
    if (
        len(numbers) != 2
        or not all(number.isascii() and number.isdigit() for number in numbers)
        or any(len(number) > 10 for number in numbers)
    ):
        raise BadRequest(400, f"Bad request version {text[:40]!r}")
    version = (int(numbers[0]), int(numbers[1]))
    if version >= (2, 0):
        raise BadRequest(505, f"HTTP version {text[5:15]} is not supported")
    return version


#: The versions a request line names nearly always, read once.
_VERSIONS = {"HTTP/1.1": (1, 1), "HTTP/1.0": (1, 0)}


#: Plain header line -> (lower-case name, value). A client repeats the same few
#: lines (host, key, version, content type) on every request; bounded, as the
#: lines that vary (a content length) are endless.
_LINES: dict[bytes, tuple[str, str]] = {}
_LINES_LIMIT = 4096


def _headers(block: bytes) -> dict[str, str]:
    """The header block (ending with its empty line) as lower-case name -> first value."""
    lines = block.split(b"\n")[:-2]  # the empty line, and nothing after its line feed
    if len(lines) + 1 > MAX_HEADERS:
        raise BadRequest(431, f"More than {MAX_HEADERS} header lines")
    headers: dict[str, str] = {}
    known = _LINES.get
    for line in lines:
        parsed = known(line)
        if parsed is None:
            if len(line) >= MAX_LINE:
                raise BadRequest(431, "A header line is too long")
            plain = _PLAIN_BYTES.fullmatch(line)
            if plain is None:
                return _unusual_headers(block)
            parsed = (plain.group(1).decode("ascii").lower(), plain.group(2).decode("iso-8859-1"))
            if len(_LINES) < _LINES_LIMIT:
                _LINES[line] = parsed
        name, value = parsed
        if name not in headers:
            headers[name] = value
    return headers


def _unusual_headers(block: bytes) -> dict[str, str]:
    try:
        message = read_headers(io.BytesIO(block))
    except http.client.HTTPException as error:  # LineTooLong is one
        raise BadRequest(431, f"Bad header block: {error}") from None
    headers: dict[str, str] = {}
    for name, value in message.items():
        headers.setdefault(name.lower(), str(value))
    return headers


def read_headers(rfile: BinaryIO) -> http.client.HTTPMessage:
    """The header block at ``rfile``'s position, up to and including the blank line.

    Raises ``http.client.LineTooLong`` and ``http.client.HTTPException`` as
    ``http.client.parse_headers`` does, and reads what it reads.
    """
    lines: list[bytes] = []
    while True:
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            break
    message = http.client.HTTPMessage()
    for line in lines[:-1]:
        plain = _PLAIN.fullmatch(line.decode("iso-8859-1"))
        if plain is None:
            text = b"".join(lines).decode("iso-8859-1")
            return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
        message.set_raw(plain.group(1), plain.group(2))
    message.set_payload("")  # as the email parser leaves it: nothing after the headers
    return message
