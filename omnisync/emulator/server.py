"""The :class:`Emulator`: a faithful Omnisend on loopback, for tests, the demo and the benchmark.

    with Emulator(api_keys=("test-key",), clock=ScaledClock(60)) as emulator:
        client = OmnisendClient(emulator.base_url, "test-key", ...)
        ...
        assert emulator.welcome_messages() == []

See ``docs/ARCHITECTURE.md`` ("Emulator") for the behaviour it models and
the choices it makes where Omnisend's rules are not published.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from omnisync.clock import Clock, ScaledClock, SystemClock
from omnisync.emulator.faults import Faults
from omnisync.emulator.handler import EmulatorHTTPServer, is_loopback_host
from omnisync.emulator.inspection import contacts_json, seed_contact
from omnisync.emulator.records import StatusChange, WelcomeMessage
from omnisync.emulator.state import EmulatorState, RequestRecord, Settings


class Emulator:
    """A real HTTP server speaking Omnisend's API (version 2026-03-15) on loopback.

    ``api_keys`` is a sequence (each key its own brand, named ``brand-1``,
    ``brand-2``, ... in order) or a mapping key -> brand name (keys of one
    brand share its contacts, batches and limits). ``clock`` drives rate-limit
    windows, batch and tag delays, ``retryAfter`` and injected latency, all in
    modelled seconds; ``time_scale=X`` is shorthand for ``clock=ScaledClock(X)``.
    ``rate_limits=False`` disables the limits. A non-loopback ``host`` needs
    ``allow_remote=True``. ``request_log_limit`` keeps only the newest N
    request records; ``log_emails=False`` keeps none of their e-mails.
    """

    def __init__(
        self,
        api_keys: Iterable[str] | Mapping[str, str] = ("test-key",),
        *,
        clock: Clock | None = None,
        time_scale: float | None = None,
        rate_limits: bool = True,
        requests_per_minute: int = 400,
        tags_per_minute: int = 60,
        batch_delay: float = 0.2,
        tag_delay: float = 0.05,
        max_batch_bytes: int = 1_000_000,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_remote: bool = False,
        request_log_limit: int | None = None,
        log_emails: bool = True,
    ) -> None:
        if clock is not None and time_scale is not None:
            raise ValueError("pass either clock or time_scale, not both")
        if not allow_remote and not is_loopback_host(host):
            raise ValueError(
                f"refusing to listen on non-loopback host {host!r} without allow_remote"
            )
        if time_scale is not None:
            clock = ScaledClock(time_scale)
        self._state = EmulatorState(
            api_keys,
            clock=clock or SystemClock(),
            settings=Settings(
                rate_limits=rate_limits,
                batch_delay=batch_delay,
                tag_delay=tag_delay,
                max_batch_bytes=max_batch_bytes,
            ),
            faults=faults or Faults(),
            requests_per_minute=requests_per_minute,
            tags_per_minute=tags_per_minute,
            request_log_limit=request_log_limit,
            log_emails=log_emails,
        )
        self._address = (host, port)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self._server.base_url if self._server else "not started"
        return f"Emulator({where}, brands={sorted(self._state.brands)!r})"

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        self._server = EmulatorHTTPServer(self._address, self._state)
        self._state.worker.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="omnisend-emulator-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        self._state.worker.stop()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _started(self) -> EmulatorHTTPServer:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return self._server

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api`` (the emulator must be started)."""
        return self._started().base_url

    @property
    def url(self) -> str:
        """The server root; the inspection API is under ``url + "/_emulator/"``."""
        return self.base_url.removesuffix("/api")

    @property
    def port(self) -> int:
        return self._started().server_port

    @property
    def clock(self) -> Clock:
        return self._state.clock

    # -- inspection ------------------------------------------------------------

    def brands(self) -> list[str]:
        return sorted(self._state.brands)

    def brand_for_key(self, api_key: str) -> str:
        return self._state.brand_for_key(api_key)

    def seed_contact(
        self, email: str, *, brand: str | None = None, **details: Any
    ) -> dict[str, Any]:
        """Add a pre-existing contact (no welcome message, no status change recorded).

        ``details`` are :func:`~omnisync.emulator.inspection.seed_contact`'s:
        ``fields``, ``custom_properties``, ``tags``, ``status``, ``status_changed_at``.
        Bad input raises ``ValueError``.
        """
        return seed_contact(self._state, email, brand=brand, **details)

    def delete_contact(self, email: str, *, brand: str | None = None) -> bool:
        """Delete a contact behind its exporters' backs (as a person in Omnisend's UI
        would); ``False`` when there is none."""
        return self._state.brand(brand).delete_contact(email)

    def remove_tags(
        self, emails: Iterable[str], tags: Iterable[str], *, brand: str | None = None
    ) -> int:
        """Remove ``tags`` from contacts at once, behind their exporters' backs (not an
        API call: nothing logged or rate-limited); returns the contacts changed."""
        body = {"emails": list(emails), "tags": list(tags)}
        return self._state.brand(brand).change_tags(
            body, remove=True, at=self._state.wall_seconds()
        )

    def contacts(self, *, brand: str | None = None) -> list[dict[str, Any]]:
        """Every contact of the brand as a ContactResponse body, oldest first."""
        return contacts_json(self._state, brand=brand, email=None)

    def contact(self, email: str, *, brand: str | None = None) -> dict[str, Any] | None:
        """One contact by its (case-sensitive) e-mail, or ``None``."""
        found = contacts_json(self._state, brand=brand, email=email)
        return found[0] if found else None

    def contact_count(self, *, brand: str | None = None) -> int:
        target = self._state.brand(brand)
        with target.lock:
            return len(target.book.by_email)

    def welcome_messages(self, *, brand: str | None = None) -> list[WelcomeMessage]:
        return self._state.brand(brand).welcome_messages()

    def status_changes(self, *, brand: str | None = None) -> list[StatusChange]:
        return self._state.brand(brand).status_changes()

    def request_log(self, *, brand: str | None = None) -> list[RequestRecord]:
        return self._state.request_log(brand)

    def counts(self) -> dict[str, Any]:
        return self._state.counts()

    def batches(self, *, brand: str | None = None) -> list[dict[str, Any]]:
        """Batch summaries, newest first."""
        return self._state.brand(brand).batch_summaries()

    def reset(self) -> None:
        self._state.reset()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait (real seconds) until every queued batch and tag call is applied.

        Returns ``False`` on timeout. Under a clock that does not move by
        itself (``FakeClock``) use :meth:`settle` instead.
        """
        return self._state.worker.wait_idle(timeout)

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait (real seconds) until the work due by the clock's *now* is applied."""
        return self._state.worker.wait_idle(timeout, due_only=True)

    # -- faults and settings ------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._state.injector.faults

    def set_faults(self, faults: Faults | None = None, /, **changes: Any) -> Faults:
        """Replace the faults (``Faults(...)``) or change some (``latency=2.0``); returns them."""
        new = (faults or self._state.injector.faults).changed(changes)
        self._state.injector.set(new)
        return new

    @property
    def settings(self) -> Settings:
        return self._state.settings

    def configure(self, **changes: Any) -> Settings:
        """Change ``rate_limits``, ``batch_delay``, ``tag_delay`` or ``max_batch_bytes`` live."""
        self._state.settings = self._state.settings.changed(changes)
        return self._state.settings
