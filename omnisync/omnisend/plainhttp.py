"""The default HTTP session: lean HTTP/1.1 of our own over ``socket``, kept-alive, pooled.

An export run sends thousands of requests from threads that share the GIL.
``http.client`` spends most of a request's CPU on what this API never needs
(an ``email`` parser for the answer's headers, a new buffered file per
answer, the head and the body in separate writes); httpx costs several
times more. :class:`PlainHttpSession` speaks HTTP/1.1 through
:mod:`omnisync.omnisend.http11` (one connection: connect, send one request
in one write, read its whole answer through the connection's one buffer)
and keeps the pooling and retry rules here:

- A lock-protected free list of kept-alive connections: a thread takes one
  (or opens a new one), uses it alone, and puts it back once the whole
  answer is read. No upper bound: there are as many as threads send at once.
- An idle connection the server has closed is noticed before it is used
  (its socket reads as ready: end of stream) and dropped. If the server
  closes it just as a request goes out (the send fails with a broken pipe
  or a reset; or the server hangs up without a byte of answer, for a GET,
  HEAD, PUT or DELETE only: a POST it may have acted on is not repeated
  here), the request is sent once more on a fresh connection: that only
  ever happens on a reused connection, and is the one retry made here.
  Every other failure (a refused connect, a timeout, a reset, an answer cut
  short or not HTTP/1.1) is raised as
  :class:`~omnisync.omnisend.session.SessionTransportError` for the
  client's retry policy to judge; its reason never quotes the request.
- A connection that failed, or whose answer said ``Connection: close`` (or
  was HTTP/1.0 without ``keep-alive``, or ran until the server closed), is
  closed and never reused.
- Headers are the client's plus ``Host``, ``Accept-Encoding: identity`` and
  ``Content-Length`` (as ``http.client`` adds them; a header value with CR
  or LF is refused with ``ValueError`` when the session is made); no
  cookies, no proxy (:func:`~omnisync.omnisend.session.open_session` picks
  httpx when one applies).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Mapping
from urllib.parse import quote, urlencode, urlsplit

from omnisync.omnisend.http11 import (
    Connection,
    ProtocolError,
    RemoteDisconnected,
    RequestEncoder,
    connect,
)
from omnisync.omnisend.session import (
    FIXED_PATHS,
    HttpAnswer,
    SessionTransportError,
    failure_reason,
)

#: Characters left as they are in a path: those of RFC 3986's ``pchar`` and ``/``,
#: plus ``%`` so that a path already quoted (a batch id) is not quoted twice.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"

#: Failures sending a request that mean the peer has closed the connection.
_PEER_CLOSED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


#: Methods whose request may be sent again when a reused connection was found
#: closed after it went out (RFC 9110, 9.2.2).
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})


class _NothingAnswered(Exception):
    """The connection was found closed before a byte of the answer arrived."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PlainHttpSession:
    """Requests to ``base_url`` (the API root, ``http://`` or ``https://``) over
    kept-alive HTTP/1.1 connections of our own. Thread-safe.

    ``headers`` go with every request (``ValueError`` for a name that is not
    a token or a value holding CR, LF or NUL; the message never quotes the
    value); ``timeout`` (seconds) bounds the connect and each wait for the
    network; ``ssl_context`` checks an ``https://`` server (default:
    ``ssl.create_default_context()``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        secure = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._ssl_context = (ssl_context or ssl.create_default_context()) if secure else None
        self._timeout = timeout
        default_port = 443 if secure else 80
        self._address = (self._host, self._port or default_port)
        self._encoder = RequestEncoder(*self._address, default_port=default_port, headers=headers)
        # Quoted like the paths: a space in the base URL must not split the request line.
        self._prefix = quote(parts.path.rstrip("/"), safe=_PATH_SAFE) + "/"
        self._targets = {path: self._prefix + path for path in FIXED_PATHS}
        self._lock = threading.Lock()
        self._idle: list[Connection] = []
        self._closed = False

    def __repr__(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        port = f":{self._port}" if self._port else ""
        return f"PlainHttpSession({scheme}://{self._host}{port}{self._prefix})"

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> HttpAnswer:
        """Send one request (``path`` relative to the base URL) and read its whole answer.

        ``params`` are URL-encoded into the query. Raises
        :class:`~omnisync.omnisend.session.SessionTransportError` when no
        complete answer came, ``RuntimeError`` once the session is closed.
        """
        target = self._targets.get(path)
        if target is None:
            target = self._prefix + quote(path, safe=_PATH_SAFE)
        if params:
            target = f"{target}?{urlencode(params)}"
        request = self._encoder.encode(method, target, body=content)
        connection, reused = self._take()
        try:
            answer, keep = self._exchange(connection, method, request=request)
        except _NothingAnswered as failure:
            if not reused:
                raise SessionTransportError(failure.reason) from None
            # The server closed this kept-alive connection while it sat idle and
            # has seen nothing of the request: a fresh connection is safe.
            connection = self._open()
            try:
                answer, keep = self._exchange(connection, method, request=request)
            except _NothingAnswered as second:
                raise SessionTransportError(second.reason) from None
        if keep:
            self._give_back(connection)
        else:
            connection.close()
        return answer

    def close(self) -> None:
        """Close the idle connections (those in use close as they come back)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    # -- helpers ----------------------------------------------------------

    def _exchange(
        self, connection: Connection, method: str, *, request: bytes
    ) -> tuple[HttpAnswer, bool]:
        """Send ``request`` on ``connection`` and read its whole answer -> (answer, keep
        the connection).

        Closes ``connection`` on any failure. Raises :class:`_NothingAnswered`
        when the peer turned out to have closed it before answering anything,
        :class:`SessionTransportError` for every other transport failure.
        """
        try:
            try:
                connection.send(request)
            except _PEER_CLOSED as error:
                raise _NothingAnswered(failure_reason(error)) from None
            try:
                answer, keep_alive = connection.read_answer(head_only=method == "HEAD")
            except RemoteDisconnected as error:
                # Not a byte came back. But the whole request went out, and the
                # server may have acted on it before closing: only a request that
                # is safe to repeat is sent again at once; any other goes to the
                # client's retry policy, which treats it as maybe processed.
                if method in _IDEMPOTENT:
                    raise _NothingAnswered(failure_reason(error)) from None
                raise
        except _NothingAnswered:
            connection.close()
            raise
        except (OSError, ProtocolError) as error:
            connection.close()
            raise SessionTransportError(failure_reason(error)) from None
        except BaseException:
            connection.close()
            raise
        return answer, keep_alive

    def _take(self) -> tuple[Connection, bool]:
        """An idle connection still open (-> reused), else a new one."""
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the HTTP session is closed")
                if not self._idle:
                    break
                connection = self._idle.pop()  # the most recently used: the likeliest alive
            if connection.reusable():
                return connection, True
            connection.close()
        return self._open(), False

    def _give_back(self, connection: Connection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(connection)
                return
        connection.close()

    def _open(self) -> Connection:
        """A new connection, connected (and through the TLS handshake).

        Raises :class:`SessionTransportError`.
        """
        host, port = self._address
        try:
            return connect(host, port, timeout=self._timeout, ssl_context=self._ssl_context)
        except OSError as error:
            raise SessionTransportError(failure_reason(error)) from None
