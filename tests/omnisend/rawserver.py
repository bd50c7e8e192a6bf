"""A loopback server that writes whatever bytes a test scripts, for wire-level session tests.

``http.server`` only ever answers well-formed HTTP; :class:`RawServer` reads
each request (head and ``Content-Length`` body) and answers with the bytes
its script returns, malformed or not, in pieces with pauses between when
asked (so the client reads an answer in many short reads), then keeps the
connection or closes it. Over TLS when given a server ``ssl.SSLContext``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO


@dataclass(frozen=True)
class RawRequest:
    """One request as the server read it."""

    head: bytes  # the request line and header lines, up to and including the empty line
    body: bytes
    connection: int  # 1 for the server's first connection, 2 for the next...
    on_connection: int  # 1 for a connection's first request

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def header_lines(self) -> list[str]:
        """The header lines as sent, in order."""
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        return [line for line in lines if line]

    def header(self, name: str) -> str | None:
        for line in self.header_lines:
            field, _, value = line.partition(":")
            if field.lower() == name.lower():
                return value.strip()
        return None


@dataclass(frozen=True)
class Reply:
    """What the server writes: ``pieces`` one after the other (``pause`` seconds
    apart), then it closes the connection when ``close``."""

    pieces: tuple[bytes, ...]
    close: bool = False
    pause: float = 0.0


def reply(data: bytes, *, close: bool = False) -> Reply:
    return Reply((data,), close=close)


def dribbled(data: bytes, *, close: bool = False) -> Reply:
    """``data`` a byte at a time: every boundary of the answer falls between two reads."""
    return Reply(tuple(data[index : index + 1] for index in range(len(data))), close, 0.0005)


def answer(body: bytes = b"{}", *, status: str = "200 OK", extra: bytes = b"") -> bytes:
    """A well-formed HTTP/1.1 answer with ``Content-Length`` (``extra``: more header lines)."""
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status.encode(),
        len(body),
        extra,
        body,
    )


Script = Callable[[RawRequest], Reply]


class RawServer:
    """Answers each request on loopback with ``script(request)``; see the module."""

    def __init__(self, script: Script, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._script = script
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[RawRequest] = []
        self.connections = 0
        self.handshake_failures = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}/api"

    def seen(self) -> list[RawRequest]:
        with self._lock:
            return list(self.requests)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(connection, number), daemon=True).start()

    def _serve(self, connection: socket.socket, number: int) -> None:
        connection.settimeout(10)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._ssl_context is not None:
            try:
                connection = self._ssl_context.wrap_socket(connection, server_side=True)
            except (OSError, ssl.SSLError):
                with self._lock:
                    self.handshake_failures += 1
                connection.close()
                return
        with connection, connection.makefile("rb") as reader:
            served = 0
            while not self._stopping.is_set():
                try:
                    request = self._read_request(reader, number, served + 1)
                except OSError:
                    return
                if request is None:
                    return
                served += 1
                with self._lock:
                    self.requests.append(request)
                scripted = self._script(request)
                try:
                    for index, piece in enumerate(scripted.pieces):
                        if index and scripted.pause:
                            time.sleep(scripted.pause)
                        connection.sendall(piece)
                except OSError:
                    return
                if scripted.close:
                    with contextlib.suppress(OSError):
                        connection.shutdown(socket.SHUT_RDWR)
                    return

    @staticmethod
    def _read_request(reader: BinaryIO, number: int, on_connection: int) -> RawRequest | None:
        lines: list[bytes] = []
        while True:
            line = reader.readline(65537)
            if not line:
                return None  # the client closed the connection
            lines.append(line)
            if line == b"\r\n":
                break
        head = b"".join(lines)
        request = RawRequest(head=head, body=b"", connection=number, on_connection=on_connection)
        length = int(request.header("Content-Length") or 0)
        body = reader.read(length) if length else b""
        return RawRequest(head=head, body=body, connection=number, on_connection=on_connection)
