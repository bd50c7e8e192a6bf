"""One HTTP/1.1 client connection over a socket: connect, send a request, read its whole answer.

The wire-level half of :class:`~omnisync.omnisend.plainhttp.PlainHttpSession`
(which keeps the pooling and retry rules). Contract:

- :func:`connect`: TCP (``TCP_NODELAY``), in TLS through
  ``ssl_context.wrap_socket(sock, server_hostname=host)`` when given a
  context; the timeout bounds the connect, the handshake and every later
  wait. Failures are ``OSError`` (``TimeoutError``, ``ssl.SSLError``...).
- :class:`RequestEncoder` checks and encodes once what every request carries
  (``Host``, the session's headers, ``Accept-Encoding: identity``); a header
  name that is not a token, or a value with CR, LF or NUL, is a ``ValueError``
  naming the header, never quoting its value (it may be the API key).
  :meth:`Connection.send` writes a request in one ``sendall``.
- :meth:`Connection.read_answer` reads one answer through the connection's
  one buffer, kept for its life: ``HTTP/1.x NNN reason`` (interim ``1xx``
  answers skipped), at most 100 header lines of at most 64 KiB, then the
  body: chunked (extensions and trailers dropped), else ``Content-Length``
  bytes, else all until the server closes; none for a ``HEAD``, a 204 or a
  304. With the answer it says whether the connection may carry another
  request: not if the answer said ``Connection: close``, was HTTP/1.0
  without ``keep-alive``, ran until the close or was followed by stray bytes.
- Reading fails with :class:`RemoteDisconnected` when the connection ended
  before a byte of the answer, :class:`IncompleteRead` when it ended inside
  it, :class:`MalformedAnswer` for what is not HTTP/1.1, or ``OSError``;
  no message quotes the request. After a failure, close the connection.

A :class:`Connection` carries one request at a time: it is not thread-safe.
"""

from __future__ import annotations

import re
import select
import socket
import ssl
from collections.abc import Mapping

from omnisync.omnisend.session import AnswerHeaders, HttpAnswer

#: http.client's limits: the longest line of an answer's head, the most header lines.
MAX_LINE = 65536
MAX_HEADERS = 100

#: Interim (1xx) answers skipped before giving up on a server that sends only those.
MAX_INTERIM = 20

#: Bytes asked of the socket at a time; most answers arrive in one read.
_RECEIVE_SIZE = 65536

#: A token (RFC 9110, 5.6.2): a method, a header name.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: What a request target or header value may not hold: it would split the request.
_TARGET_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
_VALUE_FORBIDDEN = re.compile(r"[\r\n\x00]")
#: A status line (without its line break): the minor version, the status code.
_STATUS_LINE = re.compile(r"HTTP/1\.([0-9]) ([1-9][0-9][0-9])(?: .*)?")
#: A header line, from the line feed before it: its name and its value, without the
#: blanks around it (those before are skipped; the value ends in no blank).
_HEADER_LINE = re.compile(r"\n([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*((?:[^\n]*[^ \t\n])?)[ \t]*")
#: An obsolete line folding: a line break and the blanks starting the next line.
_FOLD = re.compile(r"\n[ \t]+")
#: A chunk size, in hex (its extensions cut off first); 16 digits is far beyond any body.
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")

#: Methods whose request carries ``Content-Length: 0`` when it has no body (as http.client).
_EXPECTING_BODY = frozenset({"POST", "PUT", "PATCH"})
#: Statuses whose answer has no body whatever its headers say.
_NO_BODY_STATUSES = frozenset({204, 304})
#: Headers the request encoder writes itself, per request.
_PER_REQUEST_HEADERS = frozenset({"content-length", "transfer-encoding"})


class ProtocolError(Exception):
    """The answer could not be read as HTTP/1.1; the connection is unusable."""


class RemoteDisconnected(ProtocolError):
    """The connection ended before a single byte of the answer arrived."""


class IncompleteRead(ProtocolError):
    """The connection ended inside the answer."""


class MalformedAnswer(ProtocolError):
    """The answer breaks HTTP/1.1: its status line, a header, a length, a chunk."""


class RequestEncoder:
    """Builds the bytes of requests to one server (see the module's contract)."""

    __slots__ = ("_fixed", "_methods")

    def __init__(
        self, host: str, port: int, *, default_port: int, headers: Mapping[str, str]
    ) -> None:
        names = {name.lower() for name in headers}
        lines: list[bytes] = []
        if "host" not in names:
            authority = f"[{host}]" if ":" in host else host
            if port != default_port:
                authority = f"{authority}:{port}"
            # An internationalised name goes in IDNA, as http.client sends it.
            encoding = "ascii" if authority.isascii() else "idna"
            lines.append(b"Host: %s\r\n" % authority.encode(encoding))
        for name, value in headers.items():
            lines.append(_header_line(name, value))
        if "accept-encoding" not in names:
            lines.append(b"Accept-Encoding: identity\r\n")
        self._fixed = b" HTTP/1.1\r\n" + b"".join(lines)
        self._methods: dict[str, bytes] = {}

    def encode(self, method: str, target: str, *, body: bytes | None) -> bytes:
        """The whole request: head and ``body``, ready for one ``sendall``.

        ``Content-Length`` goes with a body (even an empty one) and, as
        ``0``, with a POST, PUT or PATCH without one. Raises ``ValueError``
        for a method that is not a token or a target with a space or a
        control character.
        """
        method_bytes = self._methods.get(method)
        if method_bytes is None:
            if not _TOKEN.fullmatch(method):
                raise ValueError(f"the method {method!r} is not a token")
            method_bytes = self._methods[method] = method.encode("ascii")
        if _TARGET_FORBIDDEN.search(target) or not target.isascii():
            raise ValueError("the request target holds a space, a control or a non-ASCII character")
        start = method_bytes + b" " + target.encode("ascii") + self._fixed
        if body is not None:
            return b"%sContent-Length: %d\r\n\r\n%s" % (start, len(body), body)
        if method in _EXPECTING_BODY:
            return start + b"Content-Length: 0\r\n\r\n"
        return start + b"\r\n"


class Connection:
    """One open connection to a server; see the module's contract."""

    __slots__ = ("_buffer", "_socket", "_start")

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        # What was received and not yet consumed: _buffer[_start:].
        self._buffer = b""
        self._start = 0

    def send(self, request: bytes) -> None:
        """Write the whole request (``OSError`` when the connection fails)."""
        self._socket.sendall(request)

    def read_answer(self, *, head_only: bool) -> tuple[HttpAnswer, bool]:
        """Read the answer to the request just sent (``head_only``: it was a HEAD)
        -> (the answer, whether the connection may carry another request).

        Raises :class:`ProtocolError` or ``OSError``.
        """
        if self._start == len(self._buffer) and not self._fill():
            raise RemoteDisconnected("the server closed the connection without answering")
        for _ in range(MAX_INTERIM + 1):
            version, status, headers = self._head()
            if status >= 200:
                break
        else:
            raise MalformedAnswer(f"more than {MAX_INTERIM} interim (1xx) answers")
        length = _content_length(headers.get("content-length"))
        chunked = _chunked(headers.get("transfer-encoding"))
        connection = headers.get("connection")
        tokens = (
            {token.strip(" \t").lower() for token in connection.split(",")} if connection else ()
        )
        # HTTP/1.0 closes unless asked to keep alive; HTTP/1.1 keeps alive unless asked to close.
        keep_alive = "keep-alive" in tokens if version == 0 else "close" not in tokens
        if head_only or status in _NO_BODY_STATUSES:
            body = b""
        elif chunked:
            body = self._chunked()
            # Transfer-Encoding with Content-Length may be a smuggling attempt: RFC 9112, 6.3.
            keep_alive = keep_alive and length is None
        elif length is not None:
            body = self._exactly(length)
        else:
            body = self._until_close()
            keep_alive = False
        if self._start < len(self._buffer):
            # Bytes nobody asked for: they would be read as the next request's answer.
            keep_alive = False
        return HttpAnswer(status_code=status, headers=headers, content=body), keep_alive

    def reusable(self) -> bool:
        """Whether the idle connection can carry a request: nothing should arrive between
        answers, so a socket ready to read has hit the end of the stream (the server
        closed it) or holds bytes nobody asked for."""
        if self._start < len(self._buffer):
            return False
        sock = self._socket
        try:
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                return False
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(sock, select.POLLIN)
                return not poller.poll(0)
            readable, _, _ = select.select([sock], [], [], 0)
            return not readable
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        """Close the socket (twice is fine)."""
        self._socket.close()

    # -- reading ----------------------------------------------------------

    def _fill(self) -> bool:
        """Receive more bytes into the buffer; ``False`` at the end of the stream."""
        received = self._socket.recv(_RECEIVE_SIZE)
        if not received:
            return False
        if self._start < len(self._buffer):
            self._buffer = self._buffer[self._start :] + received
        else:
            self._buffer = received
        self._start = 0
        return True

    def _line(self) -> bytes:
        """The next line without its CRLF (or bare LF, which HTTP/1.1 lets a reader accept)."""
        searched = self._start
        while True:
            end = self._buffer.find(b"\n", searched)
            if end >= 0:
                break
            pending = len(self._buffer) - self._start
            if pending > MAX_LINE:
                raise MalformedAnswer(f"a line of the answer is over {MAX_LINE} bytes")
            if not self._fill():
                raise IncompleteRead("the connection ended inside a line of the answer")
            searched = self._start + pending  # what was searched already holds no line feed
        line = self._buffer[self._start : end]
        if end - self._start > MAX_LINE:
            raise MalformedAnswer(f"a line of the answer is over {MAX_LINE} bytes")
        self._start = end + 1
        return line[:-1] if line.endswith(b"\r") else line

    def _head(self) -> tuple[int, int, AnswerHeaders]:
        """The status line and the header lines -> (minor version, status, headers)."""
        text = self._head_text()
        if "\n " in text or "\n\t" in text:
            # Obsolete folded lines continue the previous value (RFC 9112, 5.2).
            text = _FOLD.sub(" ", text)
        status_end = text.find("\n")
        if status_end < 0:
            status_end = len(text)  # no header lines
        match = _STATUS_LINE.fullmatch(text, 0, status_end)
        if match is None:
            raise MalformedAnswer("the status line is not 'HTTP/1.x NNN reason'")
        lines = text.count("\n")
        if lines > MAX_HEADERS:
            raise MalformedAnswer(f"the answer has more than {MAX_HEADERS} header lines")
        if len(text) > MAX_LINE and max(map(len, text.split("\n"))) > MAX_LINE:
            raise MalformedAnswer(f"a header line is over {MAX_LINE} bytes")
        # One pass of the regular expression engine rather than a loop over the lines:
        # a match starts at a line's start, so a line that is no header is missing.
        pairs: list[tuple[str, str]] = _HEADER_LINE.findall(text, status_end)
        if len(pairs) != lines:
            raise MalformedAnswer("a header line is not 'Name: value'")
        return int(match[1]), int(match[2]), AnswerHeaders(pairs)

    def _head_text(self) -> str:
        """The answer's head up to the empty line ending it (consumed), as Latin-1 text
        with LF line ends (HTTP/1.1 lets a reader take a bare LF for a CRLF)."""
        searched = 0  # how far from the buffer's start no empty line was found
        while True:
            buffer, start = self._buffer, self._start
            end = buffer.find(b"\n\r\n", start + searched)
            # A bare empty line may come first, even just before that CRLF one (end + 1).
            bare = buffer.find(b"\n\n", start + searched, len(buffer) if end < 0 else end + 1)
            if bare >= 0 or end >= 0:
                cut = bare if bare >= 0 else end
                self._start = cut + (2 if bare >= 0 else 3)
                return buffer[start:cut].replace(b"\r\n", b"\n").rstrip(b"\r").decode("latin-1")
            pending = len(buffer) - start
            # Checked before more is read, so a server can't make us buffer without end.
            if buffer.count(b"\n", start) > MAX_HEADERS + 1:
                raise MalformedAnswer(f"the answer has more than {MAX_HEADERS} header lines")
            if len(buffer) - max(buffer.rfind(b"\n", start) + 1, start) > MAX_LINE:
                raise MalformedAnswer(f"a line of the answer is over {MAX_LINE} bytes")
            if not self._fill():
                raise IncompleteRead("the connection ended inside the answer's head")
            searched = max(pending - 2, 0)  # an empty line may straddle the old end

    def _exactly(self, size: int) -> bytes:
        """The next ``size`` bytes of the body."""
        start = self._start
        available = len(self._buffer) - start
        if available >= size:
            self._start = start + size
            return self._buffer[start : start + size]
        parts = [self._buffer[start:]]
        self._buffer = b""
        self._start = 0
        remaining = size - available
        while remaining:
            # Never more than the body: what follows belongs to no request.
            received = self._socket.recv(min(remaining, _RECEIVE_SIZE))
            if not received:
                raise IncompleteRead(
                    f"the connection ended after {size - remaining} of {size} bytes of the body"
                )
            parts.append(received)
            remaining -= len(received)
        return b"".join(parts)

    def _until_close(self) -> bytes:
        """The rest of the stream: a body without a length ends when the server closes."""
        parts = [self._buffer[self._start :]]
        self._buffer = b""
        self._start = 0
        while received := self._socket.recv(_RECEIVE_SIZE):
            parts.append(received)
        return b"".join(parts)

    def _chunked(self) -> bytes:
        """A chunked body (RFC 9112, 7.1); chunk extensions and trailers are dropped."""
        parts: list[bytes] = []
        while True:
            size_text = self._line().split(b";", 1)[0].strip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise MalformedAnswer("a chunk size is not a hexadecimal number")
            size = int(size_text, 16)
            if size == 0:
                break
            parts.append(self._exactly(size))
            if self._line():
                raise MalformedAnswer("a chunk is longer than its size says")
        for _ in range(MAX_HEADERS + 1):
            if not self._line():
                return b"".join(parts)
        raise MalformedAnswer(f"the answer has more than {MAX_HEADERS} trailer lines")


def connect(
    host: str, port: int, *, timeout: float, ssl_context: ssl.SSLContext | None
) -> Connection:
    """A new connection to ``host:port``, over TLS when ``ssl_context`` is given.

    ``timeout`` bounds the connect, the handshake and each later wait.
    Raises ``OSError``.
    """
    sock = socket.create_connection((host, port), timeout)
    try:
        # The request goes out in one write, but a body over one segment ends in a
        # short one that Nagle's algorithm would hold back until an acknowledgement.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return Connection(sock)


# -- encoding and decoding helpers --------------------------------------------------


def _header_line(name: str, value: str) -> bytes:
    """``Name: value\r\n``; ``ValueError`` naming the header, never quoting the value."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"the header name {name!r} is not a token")
    if name.lower() in _PER_REQUEST_HEADERS:
        raise ValueError(f"the header {name} is set per request, not by the session")
    if _VALUE_FORBIDDEN.search(value):
        raise ValueError(f"the value of the header {name} holds a CR, LF or NUL character")
    try:
        return f"{name}: {value}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"the value of the header {name} is not Latin-1 text") from None


def _content_length(value: str | None) -> int | None:
    """The body's length from the ``Content-Length`` values (joined with commas), or
    ``None``. Repeated values must agree (RFC 9112, 6.3): else where does it end?"""
    if value is None:
        return None
    if "," in value:
        lengths = {part.strip(" \t") for part in value.split(",")}
        if len(lengths) != 1:
            raise MalformedAnswer("the answer has conflicting Content-Length values")
        [value] = lengths
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise MalformedAnswer("the answer's Content-Length is not a number")
    return int(value)


def _chunked(value: str | None) -> bool:
    """Whether ``Transfer-Encoding`` says chunked; any other coding cannot be read."""
    if value is None:
        return False
    if value.strip(" \t").lower() != "chunked":
        raise MalformedAnswer("the answer's Transfer-Encoding is not just chunked")
    return True
