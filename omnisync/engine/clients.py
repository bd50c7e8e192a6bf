"""The client pool: one Omnisend client per connection, one limiter per brand.

Runs at the same time share a brand's limiter (:class:`LimiterRegistry`), so
together they never overrun Omnisend's per-brand limits.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from omnisync.clock import Clock
from omnisync.config.model import Connection
from omnisync.config.secrets import resolve_secret
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.observer import ClientObserver, NullObserver
from omnisync.omnisend.pacing import Kind, LimiterRegistry, brand_digest


@dataclass(eq=False)  # compared by identity: runs' counters leave the observer one by one
class RequestCounter:
    """The requests finished, and the 429s met, on a connection while it is counted."""

    requests: int = 0
    rate_limited: int = 0


class _FanOutObserver:
    """The client's observer: the daemon's observer plus the counters of runs under way."""

    def __init__(self, base: ClientObserver) -> None:
        self._base = base
        self.lock = threading.Lock()
        self.counters: list[RequestCounter] = []

    def request_finished(self, endpoint: str, status: int | None, seconds: float) -> None:
        self._base.request_finished(endpoint, status, seconds)
        with self.lock:
            for counter in self.counters:
                counter.requests += 1

    def rate_limited(self, endpoint: str, retry_after: float) -> None:
        self._base.rate_limited(endpoint, retry_after)
        with self.lock:
            for counter in self.counters:
                counter.rate_limited += 1

    def limiter_waited(self, kind: Kind, seconds: float) -> None:
        self._base.limiter_waited(kind, seconds)


class ClientPool(AbstractContextManager["ClientPool"]):
    """Hands out the client of a connection, creating it on first use. Thread-safe.

    API keys (resolved on every call: a rotated key gets a fresh client) and a
    source's secrets are resolved from ``environ`` (default ``os.environ``).
    ``observer_for(connection_name)`` supplies the daemon's metrics observer;
    ``gate_for(connection)`` may give a callable run before each of that
    client's requests (a replica's lease check). ``registry`` holds one rate limiter
    per brand, shared by every client of that brand (a fresh one by default).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        environ: Mapping[str, str] | None = None,
        observer_for: Callable[[str], ClientObserver] | None = None,
        gate_for: Callable[[Connection], Callable[[], None] | None] | None = None,
        registry: LimiterRegistry | None = None,
    ) -> None:
        self._clock = clock
        self._registry = LimiterRegistry(clock=clock) if registry is None else registry
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self._observer_for = observer_for
        self._gate_for = gate_for
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[object, OmnisendClient]] = {}
        # Every client made, a key's rotation's old ones included (a run may still be
        # using one): closed with the pool.
        self._observers: dict[OmnisendClient, _FanOutObserver] = {}

    def client_for(self, connection: Connection) -> OmnisendClient:
        """The shared client of ``connection``. Raises ``SecretUnavailable`` when the
        API key cannot be resolved or is malformed (never echoing it)."""
        api_key = resolve_secret(connection.api_key, environ=self.environ, header=True)
        # Everything that shapes the client, with the key only as a digest.
        signature = (connection.base_url, brand_digest(api_key), connection.rate_limit)
        limits = connection.rate_limit
        with self._lock:
            found = self._clients.get(connection.name)
            if found is not None and found[0] == signature:
                return found[1]
            limiter = self._registry.limiter(
                connection.base_url,
                api_key,
                requests_per_minute=limits.requests_per_minute,
                tags_per_minute=limits.tags_per_minute,
            )
            base = self._observer_for(connection.name) if self._observer_for else NullObserver()
            observer = _FanOutObserver(base)
            client = OmnisendClient(
                connection.base_url,
                api_key,
                limiter=limiter,
                clock=self._clock,
                observer=observer,
                request_gate=self._gate_for(connection) if self._gate_for else None,
            )
            self._observers[client] = observer
            self._clients[connection.name] = (signature, client)
            return client

    @contextmanager
    def counting(self, client: OmnisendClient) -> Iterator[RequestCounter]:
        """Count the requests ``client`` (one of this pool's) finishes inside the block.

        Takes the client, not its connection: a key rotated since the run got its
        client gives the connection a new one, and the run's requests go on the old.
        """
        with self._lock:
            observer = self._observers[client]
        counter = RequestCounter()
        with observer.lock:
            observer.counters.append(counter)
        try:
            yield counter
        finally:
            with observer.lock:
                observer.counters.remove(counter)

    def close(self) -> None:
        """Close every client this pool created (it can be used again afterwards)."""
        with self._lock:
            clients = list(self._observers)
            self._clients.clear()
            self._observers.clear()
        for client in clients:
            client.close()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
