"""The client pool: one Omnisend client and one shared limiter per connection.

Every export using a connection shares its :class:`OmnisendClient` (a pooled
HTTP client) and, through the :class:`LimiterRegistry`, its brand's
:class:`BrandLimiter`, so exports running at the same time never overrun
Omnisend's per-brand limits together. The API key is resolved on every
:meth:`ClientPool.client_for` call, so a rotated key (a new value behind the
same reference) takes effect on the next run with a fresh client.

Each client's observer fans out to the daemon's metrics observer (if any)
and to the request counters of the runs using it (:meth:`counting`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import httpx

from omnisync.clock import Clock
from omnisync.config.model import Connection
from omnisync.config.secrets import resolve_secret
from omnisync.omnisend.client import ClientObserver, NullObserver, OmnisendClient
from omnisync.omnisend.pacing import Kind, LimiterRegistry, brand_digest


class RequestCounter:
    """Counts the requests finished on a connection while it is registered. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.rate_limited = 0

    def request_finished(self, endpoint: str, status: int | None, seconds: float) -> None:
        with self._lock:
            self.requests += 1

    def rate_limited_once(self) -> None:
        with self._lock:
            self.rate_limited += 1


class _FanOutObserver:
    """The client's observer: the daemon's observer plus the counters of runs under way."""

    def __init__(self, base: ClientObserver) -> None:
        self._base = base
        self._lock = threading.Lock()
        self._counters: tuple[RequestCounter, ...] = ()

    def add(self, counter: RequestCounter) -> None:
        with self._lock:
            self._counters = (*self._counters, counter)

    def remove(self, counter: RequestCounter) -> None:
        with self._lock:
            self._counters = tuple(c for c in self._counters if c is not counter)

    def request_finished(self, endpoint: str, status: int | None, seconds: float) -> None:
        self._base.request_finished(endpoint, status, seconds)
        for counter in self._counters:
            counter.request_finished(endpoint, status, seconds)

    def rate_limited(self, endpoint: str, retry_after: float) -> None:
        self._base.rate_limited(endpoint, retry_after)
        for counter in self._counters:
            counter.rate_limited_once()

    def limiter_waited(self, kind: Kind, seconds: float) -> None:
        self._base.limiter_waited(kind, seconds)


class ClientPool:
    """Hands out the client of a connection, creating it on first use.

    ``environ`` and ``credentials_directory`` are where API keys and a source's
    secrets are resolved (default: the process's environment and
    ``$CREDENTIALS_DIRECTORY``). ``observer_for(connection_name)`` supplies the
    daemon's metrics observer per connection. ``transport`` and ``timeout``
    are passed to every client (tests wrap the transport to check the
    contract). ``gate_for(connection)`` may give a callable run before each of
    that client's requests (a replica's lease check). Thread-safe; :meth:`close`
    closes every client.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        registry: LimiterRegistry | None = None,
        environ: Mapping[str, str] | None = None,
        credentials_directory: str | None = None,
        observer_for: Callable[[str], ClientObserver] | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        gate_for: Callable[[Connection], Callable[[], None] | None] | None = None,
    ) -> None:
        self._clock = clock
        # Not `registry or ...`: an empty registry is falsy (it has a length).
        self._registry = registry if registry is not None else LimiterRegistry(clock=clock)
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.credentials_directory = credentials_directory
        self._observer_for = observer_for
        self._transport = transport
        self._timeout = timeout
        self._gate_for = gate_for
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[str, OmnisendClient, _FanOutObserver]] = {}
        self._retired: list[OmnisendClient] = []

    def client_for(self, connection: Connection) -> OmnisendClient:
        """The shared client of ``connection``.

        Raises :class:`omnisync.config.secrets.SecretUnavailable` when the API
        key cannot be resolved, :class:`ValueError` when it is malformed (the
        message never contains it).
        """
        return self._entry(connection)[1]

    @contextmanager
    def counting(self, connection: Connection) -> Iterator[RequestCounter]:
        """Count the requests the connection's client finishes inside the block."""
        _, _, observer = self._entry(connection)
        counter = RequestCounter()
        observer.add(counter)
        try:
            yield counter
        finally:
            observer.remove(counter)

    def _entry(self, connection: Connection) -> tuple[str, OmnisendClient, _FanOutObserver]:
        api_key = resolve_secret(
            connection.api_key,
            environ=self.environ,
            credentials_directory=self.credentials_directory,
        )
        signature = _signature(connection, api_key)
        with self._lock:
            found = self._clients.get(connection.name)
            if found is not None and found[0] == signature:
                return found
            limiter = self._registry.limiter(
                connection.base_url,
                api_key,
                requests_per_minute=connection.rate_limit.requests_per_minute,
                tags_per_minute=connection.rate_limit.tags_per_minute,
            )
            base = self._observer_for(connection.name) if self._observer_for else NullObserver()
            observer = _FanOutObserver(base)
            client = OmnisendClient(
                connection.base_url,
                api_key,
                limiter=limiter,
                clock=self._clock,
                transport=self._transport,
                timeout=self._timeout,
                observer=observer,
                request_gate=self._gate_for(connection) if self._gate_for else None,
            )
            if found is not None:
                # A run may still be using the old client: close it with the pool.
                self._retired.append(found[1])
            entry = (signature, client, observer)
            self._clients[connection.name] = entry
            return entry

    def close(self) -> None:
        """Close every client this pool created. The pool can be used again afterwards."""
        with self._lock:
            clients = [entry[1] for entry in self._clients.values()] + self._retired
            self._clients.clear()
            self._retired.clear()
        for client in clients:
            client.close()

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _signature(connection: Connection, api_key: str) -> str:
    # Everything that shapes the client, with the key only as a digest.
    digest = brand_digest(api_key)
    limits = connection.rate_limit
    return f"{connection.base_url}|{digest}|{limits.requests_per_minute}|{limits.tags_per_minute}"
