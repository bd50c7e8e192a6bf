"""The control endpoint's HTTP server: waitress's (an idle connection costs a descriptor,
never a thread), with a *connection budget* (:class:`BudgetServer`):

- at most :func:`connection_limit` connections: a quarter of the open-file
  limit (runs keep the descriptors they need), at most 100;
- a connection must deliver a complete request within :data:`REQUEST_DEADLINE`
  of opening or of its previous answer, or is closed (idle and "slowloris" ones);
- at the budget a new connection is still accepted: the one waiting longest
  without a complete request is closed to make room (never one being answered);
- out of file descriptors, accepting pauses a moment instead of spinning.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import resource
import socket
import time
from typing import Any

from waitress.channel import HTTPChannel  # type: ignore[import-untyped]
from waitress.parser import HTTPRequestParser, ParsingError  # type: ignore[import-untyped]
from waitress.server import TcpWSGIServer  # type: ignore[import-untyped]

_log = logging.getLogger("omnisync.daemon.control")  # the endpoint's log, as before the split

#: Seconds a connection has to deliver a complete request, from its opening or its
#: previous answer.
REQUEST_DEADLINE = 5.0
#: Threads that run requests (every answer is quick; the I/O loop is one more thread).
WORKER_THREADS = 4
#: At most this many connections, whatever the file limit.
MAX_CONNECTIONS = 100
#: How long accepting pauses when the process is out of file descriptors.
_ACCEPT_PAUSE = 0.5


def raise_file_limit() -> None:
    """Raise the soft limit on open files to the hard one (a refusal leaves it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if resource.RLIM_INFINITY not in (hard, soft) and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as error:
            _log.debug("cannot raise the open-file limit: %s", error)


def connection_limit(file_limit: int | None = None) -> int:
    """How many control connections may be open at once: a quarter of the file limit, ≤ 100."""
    if file_limit is None:
        file_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if file_limit == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(4, min(MAX_CONNECTIONS, int(file_limit) // 4))


def ip_or_none(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address, or ``None`` for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class _Parser(HTTPRequestParser):  # type: ignore[misc]
    """waitress's parser; a header value too long for ``int()`` (a Content-Length of over
    4,300 digits) is a 400, not a traceback and an unanswered connection."""

    def parse_header(self, header_plus: bytes) -> None:
        try:
            super().parse_header(header_plus)
        except ValueError as error:
            raise ParsingError(f"invalid header value: {str(error)[:60]}") from None


class _Channel(HTTPChannel):  # type: ignore[misc]
    """One connection; ``waiting_since`` (monotonic) is ``None`` while it is being answered."""

    parser_class = _Parser

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting_since: float | None = time.monotonic()


class BudgetServer(TcpWSGIServer):  # type: ignore[misc]
    """waitress's TCP server with the connection budget (see the module's doc): its
    :meth:`readable` replaces waitress's own idle sweep and connection limit."""

    channel_class = _Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.limit = connection_limit()
        self._next_sweep = 0.0
        self._paused_until = 0.0
        self._paused_logged = 0.0
        super().__init__(*args, **kwargs)

    def readable(self) -> bool:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + min(1.0, REQUEST_DEADLINE / 4)
            self._sweep(now)
        if not self.accepting or now < self._paused_until:
            return False
        # At the budget: accept only when a waiting connection can make room.
        return len(self.active_channels) < self.limit or self._longest_waiting() is not None

    def _sweep(self, now: float) -> None:
        for channel in list(self.active_channels.values()):
            if channel.requests:
                channel.waiting_since = None
            elif channel.waiting_since is None:
                channel.waiting_since = now
            elif now - channel.waiting_since > REQUEST_DEADLINE:
                channel.will_close = True  # closed by the loop on its next pass

    def _longest_waiting(self) -> _Channel | None:
        candidates = [
            channel
            for channel in self.active_channels.values()
            if channel.waiting_since is not None and not channel.requests
        ]
        return min(candidates, key=lambda channel: channel.waiting_since, default=None)

    def handle_accept(self) -> None:
        if len(self.active_channels) >= self.limit:
            victim = self._longest_waiting()
            if victim is None:
                return
            victim.handle_close()
        try:
            pair = self.accept()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # Out of descriptors: stop accepting a moment rather than spin on a
                # listening socket that stays readable.
                now = time.monotonic()
                self._paused_until = now + _ACCEPT_PAUSE
                if now - self._paused_logged > 60:
                    self._paused_logged = now
                    _log.warning(
                        "control endpoint cannot accept a connection: %s",
                        error.strerror,
                        extra={"event": "control_accept_failed"},
                    )
            return
        if pair is None:
            return
        connection, address = pair
        self.channel_class(self, connection, address, self.adj, map=self._map)


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``port`` on the first address of ``host`` (an IP literal's is itself)."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((str(address[0]), port))
    except BaseException:
        sock.close()
        raise
    return sock
