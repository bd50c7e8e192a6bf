"""A lean HTTP/1.1 server: one thread per connection, keep-alive, one write per answer.

``http.server`` spends about half a millisecond of CPU on each request (file
objects, the ``email`` header parser, a write per header line), which a
benchmark of ten thousand batch calls feels. This server does what the
emulator needs with few system calls and few Python steps:

- a connection's bytes are read with ``recv`` into one buffer; a request head
  ends at its first empty line (leading empty lines are skipped) and is
  parsed by :func:`~omnisync.emulator.httpparse.parse_head`; the body is
  exactly ``Content-Length`` bytes (``Transfer-Encoding: chunked`` answers
  411); ``Expect: 100-continue`` is answered once the length is accepted;
- HTTP/1.1 connections stay open unless the client says ``Connection: close``
  (HTTP/1.0 ones close unless it says ``keep-alive``); pipelined requests are
  read from the buffer and answered in order;
- an answer (status line, headers, body) leaves in one ``sendall``.

A head that cannot be parsed answers what ``http.server`` answers (400, 414,
431, 505; 501 for a method outside :attr:`LeanHTTPServer.methods`) and
closes. An idle connection is closed after :data:`IDLE_SECONDS` real
seconds. A client that disconnects, before or in the middle of a body or an
answer, just ends its connection's thread: no error, no traceback.

The application is a :class:`Responder`; the server owns the sockets.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Protocol

from omnisync.emulator.httpparse import MAX_HEADERS, MAX_LINE, BadRequest, parse_head

logger = logging.getLogger("omnisync.emulator")

#: Idle keep-alive connections (and stalled writes) give up after this many real seconds.
IDLE_SECONDS = 120
#: A head longer than this cannot be within the line limits: 431.
MAX_HEAD_BYTES = (MAX_HEADERS + 1) * (MAX_LINE + 2)
_READ_SIZE = 65536
_REASONS = {status.value: status.phrase for status in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def head_end(buffer: bytes) -> int:
    """Where the first ``\\r?\\n\\r?\\n`` in ``buffer`` ends (just past the head), or -1.

    Two ``bytes.find`` calls instead of a regular expression search, which
    tries a match at every byte of the head (``tests/emulator/test_httpparse.py``
    holds the two equal).
    """
    crlf = buffer.find(b"\n\r\n")
    # A bare "\n\n" counts only when it comes first; a later one cannot matter.
    bare = buffer.find(b"\n\n", 0, len(buffer) if crlf < 0 else crlf + 1)
    if bare >= 0:
        return bare + 2
    return crlf + 3 if crlf >= 0 else -1


class HttpRequest:
    """One request as read: ``headers`` has lower-case names (first value of a repeated one)."""

    __slots__ = ("body", "headers", "method", "target", "version")

    def __init__(
        self,
        method: str,
        target: str,
        version: tuple[int, int],
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        # Never the headers: they carry the API key.
        return f"HttpRequest({self.method} {self.target[:80]!r}, {len(self.body)} bytes)"


class Responder(Protocol):
    """What the server asks of the application."""

    def body_limit(self) -> int:
        """The largest ``Content-Length`` read; a larger one answers 413 and closes."""

    def respond(self, connection: HttpConnection, request: HttpRequest) -> None:
        """Answer ``request`` through ``connection.send`` (or ``connection.drop``).

        ``OSError`` (the client went away) may propagate: it ends the connection quietly.
        """

    def refuse(self, connection: HttpConnection, status: int, detail: str) -> None:
        """Answer a request the server will not read further; the connection then closes."""


class HttpConnection:
    """One client connection: reads its requests, writes their answers."""

    def __init__(
        self,
        sock: socket.socket,
        client_host: str,
        responder: Responder,
        *,
        methods: frozenset[str],
    ) -> None:
        self.socket = sock
        self.client_host = client_host
        #: Set to end the connection after the current answer.
        self.closing = False
        #: The method of the request being answered (a HEAD answer has no body).
        self.method = ""
        self._responder = responder
        self._methods = methods
        self._buffer = b""

    def serve(self) -> None:
        """Answer requests until the client leaves, asks to close, or a fault closes."""
        with contextlib.suppress(OSError):  # a reset, a stalled client: just end
            while not self.closing:
                request = self._read_request()
                if request is None:
                    return
                self._responder.respond(self, request)

    # -- answers ----------------------------------------------------------------

    def send(
        self,
        status: int,
        payload: bytes = b"",
        *,
        headers: tuple[tuple[str, str], ...] = (),
        content_type: str = "application/json",
    ) -> None:
        """Write one answer in one ``sendall`` (raises ``OSError`` if the client left)."""
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\nDate: {http_date()}\r\n"
        head += f"Content-Length: {len(payload)}\r\n"
        if payload:
            head += f"Content-Type: {content_type}\r\n"
        for name, value in headers:
            head += f"{name}: {value}\r\n"
        if self.closing:
            head += "Connection: close\r\n"
        data = (head + "\r\n").encode("latin-1")
        self.socket.sendall(data if self.method == "HEAD" else data + payload)

    def drop(self) -> None:
        """Close the connection without a word, as a network fault would."""
        self.closing = True
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)

    # -- reading ------------------------------------------------------------------

    def _read_request(self) -> HttpRequest | None:
        head = self._read_head()
        if head is None:
            return None
        try:
            parsed = parse_head(head)
            if parsed.method not in self._methods:
                raise BadRequest(501, f"Unsupported method {parsed.method[:20]!r}")
        except BadRequest as error:
            self._refuse(error.status, error.detail)
            return None
        self.method = parsed.method
        headers = parsed.headers
        connection = headers.get("connection", "").lower()
        self.closing = connection == "close" or (
            parsed.version < (1, 1) and connection != "keep-alive"
        )
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._refuse(411, "Send the body with a Content-Length header")
            return None
        length_text = headers.get("content-length", "").strip()
        if length_text and not (length_text.isascii() and length_text.isdigit()):
            self._refuse(400, "Content-Length is not a number")
            return None
        length = int(length_text or 0)
        limit = self._responder.body_limit()
        if length > limit:
            # Not read at all: answer and close rather than swallow megabytes.
            self._refuse(413, f"The body is larger than {limit} bytes")
            return None
        if parsed.version >= (1, 1) and headers.get("expect", "").lower() == "100-continue":
            self.socket.sendall(_CONTINUE)
        body = self._read_body(length)
        if body is None:
            return None
        return HttpRequest(parsed.method, parsed.target, parsed.version, headers, body)

    def _refuse(self, status: int, detail: str) -> None:
        self.closing = True
        self._responder.refuse(self, status, detail)

    def _read_head(self) -> bytes | None:
        """The next request head (through its empty line), or ``None`` at the end."""
        buffer = self._buffer
        while True:
            if buffer[:1] in (b"\r", b"\n"):
                buffer = buffer.lstrip(b"\r\n")  # empty lines before a request are ignored
            end = head_end(buffer)
            if end >= 0:
                self._buffer = buffer[end:]
                return buffer[:end]
            if len(buffer) > MAX_LINE and buffer.find(b"\n", 0, MAX_LINE + 1) < 0:
                self._refuse(414, "The request line is too long")
                return None
            if len(buffer) > MAX_HEAD_BYTES:
                self._refuse(431, "The request head is too large")
                return None
            chunk = self.socket.recv(_READ_SIZE)
            if not chunk:
                return None  # the client closed (between requests, or mid-head)
            buffer += chunk

    def _read_body(self, length: int) -> bytes | None:
        """Exactly ``length`` bytes, or ``None`` when the client leaves first."""
        buffer = self._buffer
        if len(buffer) >= length:
            self._buffer = buffer[length:]
            return buffer[:length]
        parts = [buffer]
        have = len(buffer)
        while have < length:
            # MSG_WAITALL: the kernel gathers the rest of the body before waking
            # this thread, rather than once per arriving segment (a 25 KB batch
            # comes in several); a timeout or the client leaving returns less.
            chunk = self.socket.recv(length - have, socket.MSG_WAITALL)
            if not chunk:
                self._buffer = b""
                return None
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self._buffer = data[length:]
        return data[:length]


class LeanHTTPServer(socketserver.ThreadingTCPServer):
    """Accepts connections (a daemon thread each), tracked for :meth:`close_connections`."""

    daemon_threads = True
    allow_reuse_address = True
    #: The methods answered; any other answers 501.
    methods = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

    def __init__(self, address: tuple[str, int], responder: Responder) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, socketserver.BaseRequestHandler)
        self.responder = responder
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection on this (its own) thread."""
        sock: socket.socket = request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Kernel timeouts on a blocking socket: no poll() before every recv, as
        # Python's own socket timeouts would do; a lapse raises OSError.
        timeout = struct.pack("ll", IDLE_SECONDS, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
        with self._connections_lock:
            self._connections.add(sock)
        try:
            HttpConnection(
                sock, str(client_address[0]), self.responder, methods=self.methods
            ).serve()
        finally:
            with self._connections_lock:
                self._connections.discard(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed outside a request: no traceback on stderr."""
        logger.debug("emulator connection closed abruptly", exc_info=True)

    def close_connections(self) -> None:
        """Shut every open connection down (their threads then end)."""
        with self._connections_lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)


_date_lock = threading.Lock()
_date_cache: tuple[int, str] = (0, "")


def http_date(now: Callable[[], float] = time.time) -> str:
    """The ``Date`` header's value for now (RFC 9110 IMF-fixdate), made once a second."""
    global _date_cache  # noqa: PLW0603 - a per-second memo shared by connection threads
    second = int(now())
    cached = _date_cache
    if cached[0] == second:
        return cached[1]
    with _date_lock:
        _date_cache = (second, formatdate(second, usegmt=True))
        return _date_cache[1]
