"""The :class:`Emulator`: a faithful Omnisend on loopback, for tests, the demo and the benchmark.

    with Emulator(api_keys=("test-key",), clock=ScaledClock(60)) as emulator:
        client = OmnisendClient(emulator.base_url, "test-key", ...)
        ...
        assert emulator.welcome_messages() == []

Its inspection methods are served over HTTP too, under ``/_emulator`` (no
key; loopback clients only; ``brand`` may be left out when there is one):

=======  =====================  =============================================
GET      /brands                ``{"brands": [name, ...]}``
GET      /contacts              ``?brand=&email=`` -> ``{"contacts": [ContactResponse]}``
POST     /contacts              seed one pre-existing contact: ``{brand?, email,
                                fields?, customProperties?, tags?, status?,
                                statusChangedAt?}`` -> 201 ContactResponse
GET      /welcome-messages      ``{"welcomeMessages": [{email, at, channel, identifier}]}``
GET      /status-changes        ``{"statusChanges": [{email, from, to, at, channel}]}``
GET      /requests              ``?brand=&since=N`` -> ``{"requests": [RequestRecord]}``
GET      /counts                ``{total, rate_limited, by_endpoint: {endpoint: {status: n}}}``
GET      /batches               ``?brand=`` -> ``{"batches": [Batch summary]}``, newest first
GET/PUT  /faults                read / change (PUT merges the given settings)
GET/PUT  /settings              ``rate_limits``, ``batch_delay``, ``tag_delay``,
                                ``max_batch_bytes``, ``batch_retention``
POST     /drain                 ``{timeout?, dueOnly?}`` -> ``{"idle": bool}`` once queued
                                work (or only the work due by now) is applied
POST     /reset                 forget contacts, batches, windows, logs and counts
=======  =====================  =============================================

Bad input (a ``ValueError``) answers 400 ``{"error": "..."}``; an unknown path 404.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from omnisync.clock import Clock, ScaledClock, SystemClock
from omnisync.emulator.contacts import CONTACT_FIELDS, StatusChange, WelcomeMessage
from omnisync.emulator.faults import Faults, changed, check_flag, check_number
from omnisync.emulator.handler import EmulatorHTTPServer, is_loopback_host
from omnisync.emulator.state import EmulatorState, RequestRecord, Settings
from omnisync.emulator.validation import FieldError, validate_contact


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
    Methods taking ``brand`` may leave it out when there is one brand; bad
    input raises ``ValueError``.
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
        batch_retention: float = 7 * 24 * 3600.0,
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
                f"refusing to listen on non-loopback host {host!r}: the emulator is a test"
                " tool; pass --allow-remote (allow_remote=True) if you really mean it"
            )
        if time_scale is not None:
            clock = ScaledClock(time_scale)
        self._state = EmulatorState(
            api_keys,
            clock=clock or SystemClock(),
            settings=Settings(
                rate_limits, batch_delay, tag_delay, max_batch_bytes, batch_retention
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
        return f"Emulator({where}, brands={self.brands()!r})"

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        self._server = EmulatorHTTPServer(self._address, self._state, self.inspect)
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

    def brands(self) -> list[str]:
        return sorted(self._state.brands)

    def seed_contact(
        self,
        email: str,
        *,
        brand: str | None = None,
        fields: Mapping[str, str] | None = None,
        custom_properties: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        status: str = "nonSubscribed",
        status_changed_at: str | None = None,
    ) -> dict[str, Any]:
        """Create (or overwrite) a contact as if it existed before: no welcome message, no
        status change recorded. Returns its ContactResponse. What the API would refuse in
        a contact body raises ``ValueError`` naming each wrong field."""
        fields = dict(fields or {})
        unknown = sorted(set(fields) - set(CONTACT_FIELDS))
        if unknown:
            raise ValueError(f"unknown contact field(s) {unknown}; known: {sorted(CONTACT_FIELDS)}")
        channel = {"status": status}
        if status_changed_at is not None:
            channel["statusChangedAt"] = status_changed_at
        identifier = {"type": "email", "id": email, "channels": {"email": channel}}
        # A string is not a list of tags: left whole for the validator to refuse.
        tag_list = tags if isinstance(tags, str) else list(tags)
        body: dict[str, Any] = {**fields, "identifiers": [identifier], "tags": tag_list}
        if custom_properties is not None:
            body["customProperties"] = custom_properties
        errors = validate_contact(body, creating=True)
        # orjson writes integers of 64 bits (and parses JSON into them): only a seed has larger.
        properties = custom_properties if isinstance(custom_properties, Mapping) else {}
        for name, value in properties.items():
            items = value if isinstance(value, list) else [value]
            if any(isinstance(item, int) and not -(2**63) <= item < 2**64 for item in items):
                message = "Integers must fit in 64 bits"
                errors.append(FieldError(f"customProperties.{name}", message))
        if errors:
            raise ValueError("; ".join(f"{error.field}: {error.message}" for error in errors))
        target = self._state.brand(brand)
        with target.lock:
            return target.book.render(target.book.seed(body, at=target.now()))

    def delete_contact(self, email: str, *, brand: str | None = None) -> bool:
        """Delete a contact behind its exporters' backs (as a person in Omnisend's UI
        would); ``False`` when there is none."""
        target = self._state.brand(brand)
        with target.lock:
            return target.book.delete(email)

    def remove_tags(
        self, emails: Iterable[str], tags: Iterable[str], *, brand: str | None = None
    ) -> int:
        """Remove ``tags`` from contacts at once, behind their exporters' backs (not an
        API call: nothing logged or rate-limited); returns the contacts changed."""
        body = {"emails": list(emails), "tags": list(tags)}
        return self._state.brand(brand).change_tags(body, remove=True)

    def contacts(self, *, brand: str | None = None) -> list[dict[str, Any]]:
        """Every contact of the brand as a ContactResponse body, oldest first."""
        target = self._state.brand(brand)
        return target.render(target.contacts())

    def contact(self, email: str, *, brand: str | None = None) -> dict[str, Any] | None:
        """One contact by its (case-sensitive) e-mail, or ``None``."""
        target = self._state.brand(brand)
        record = target.find(email=email)
        return None if record is None else target.render([record])[0]

    def contact_count(self, *, brand: str | None = None) -> int:
        return len(self._state.brand(brand).book.by_email)

    def welcome_messages(self, *, brand: str | None = None) -> list[WelcomeMessage]:
        target = self._state.brand(brand)
        with target.lock:
            return list(target.book.welcome_messages)

    def status_changes(self, *, brand: str | None = None) -> list[StatusChange]:
        target = self._state.brand(brand)
        with target.lock:
            return list(target.book.status_changes)

    def request_log(self, *, brand: str | None = None) -> list[RequestRecord]:
        return self._state.request_log(brand)

    def counts(self) -> dict[str, Any]:
        """``{"total", "rate_limited", "by_endpoint": {endpoint: {status: n}}}``; statuses
        are strings, a dropped connection ``"dropped"``."""
        return self._state.counts()

    def batches(self, *, brand: str | None = None) -> list[dict[str, Any]]:
        """Batch summaries, newest first (a batch past ``batch_retention`` forgotten)."""
        target = self._state.brand(brand)
        target.forget_batches(self.settings.batch_retention)
        return target.batch_summaries()

    def reset(self) -> None:
        """Forget all contacts, batches, windows, logs and counts; keep keys, settings, faults."""
        self._state.reset()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait (real seconds) until every queued batch and tag call is applied; ``False``
        on timeout. Under a clock that does not move by itself (``FakeClock``) use
        :meth:`settle`."""
        return self._state.worker.wait_idle(timeout)

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait (real seconds) until the work due by the clock's *now* is applied."""
        return self._state.worker.wait_idle(timeout, due_only=True)

    @property
    def faults(self) -> Faults:
        return self._state.injector.faults

    def set_faults(self, faults: Faults | None = None, /, **changes: Any) -> Faults:
        """Replace the faults (``Faults(...)``) or change some (``latency=2.0``); returns them."""
        new = (faults or self.faults).changed(changes)
        self._state.injector.set(new)
        return new

    @property
    def settings(self) -> Settings:
        return self._state.settings

    def configure(self, **changes: Any) -> Settings:
        """Change ``rate_limits``, ``batch_delay``, ``tag_delay``, ``max_batch_bytes`` or
        ``batch_retention`` live."""
        self._state.settings = changed(self._state.settings, changes, what="setting")
        return self._state.settings

    def inspect(self, method: str, path: str, query: dict[str, str], raw: bytes) -> tuple[int, Any]:
        """Answer one ``/_emulator`` request (the table above): ``(status, JSON body)``."""
        brand = query.get("brand")
        try:
            match method, path.rstrip("/"):
                case "GET", "/brands":
                    return 200, {"brands": self.brands()}
                case "GET", "/contacts":
                    email = query.get("email")
                    if email is None:
                        return 200, {"contacts": self.contacts(brand=brand)}
                    found = self.contact(email, brand=brand)
                    return 200, {"contacts": [] if found is None else [found]}
                case "POST", "/contacts":
                    body = _json_object(raw)
                    if not isinstance(body.get("email"), str):
                        raise ValueError("email is required")
                    return 201, self.seed_contact(
                        body["email"],
                        brand=body.get("brand", brand),
                        fields=body.get("fields"),
                        custom_properties=body.get("customProperties"),
                        tags=body.get("tags") or (),
                        status=body.get("status", "nonSubscribed"),
                        status_changed_at=body.get("statusChangedAt"),
                    )
                case "GET", "/welcome-messages":
                    messages = self.welcome_messages(brand=brand)
                    return 200, {"welcomeMessages": [dataclasses.asdict(m) for m in messages]}
                case "GET", "/status-changes":
                    rows = [
                        {
                            "email": change.email,
                            "from": change.from_status,
                            "to": change.to_status,
                            "at": change.at,
                            "channel": change.channel,
                        }
                        for change in self.status_changes(brand=brand)
                    ]
                    return 200, {"statusChanges": rows}
                case "GET", "/requests":
                    try:
                        since = int(query.get("since", "0"))
                    except ValueError:
                        raise ValueError("since must be an integer sequence number") from None
                    records = self.request_log(brand=brand)
                    return 200, {"requests": [r.to_json() for r in records if r.sequence > since]}
                case "GET", "/counts":
                    return 200, self.counts()
                case "GET", "/batches":
                    return 200, {"batches": self.batches(brand=brand)}
                case "GET", "/faults":
                    return 200, self.faults.to_json()
                case "PUT" | "PATCH", "/faults":
                    return 200, self.set_faults(**_json_object(raw)).to_json()
                case "GET", "/settings":
                    return 200, dataclasses.asdict(self.settings)
                case "PUT" | "PATCH", "/settings":
                    return 200, dataclasses.asdict(self.configure(**_json_object(raw)))
                case "POST", "/drain":
                    body = _json_object(raw)
                    timeout, due_only = body.get("timeout", 10.0), body.get("dueOnly", False)
                    check_number("timeout", timeout, low=0)
                    check_flag("dueOnly", due_only)
                    idle = self._state.worker.wait_idle(float(timeout), due_only=due_only)
                    return 200, {"idle": idle}
                case "POST", "/reset":
                    self.reset()
                    return 200, {"reset": True}
        except ValueError as error:
            return 400, {"error": str(error)}
        return 404, {"error": f"no inspection endpoint {method} /_emulator{path}"}


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise ValueError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body
