"""Fixtures for tests against the real emulator on loopback, every exchange contract-checked."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from omnisync.clock import Clock, ScaledClock
from omnisync.contact import ContactWrite, EmailConsent
from omnisync.emulator import Emulator, RequestRecord
from omnisync.omnisend.batches import ItemFailure
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.errors import OmnisendError
from omnisync.omnisend.pacing import BrandLimiter
from omnisync.omnisend.payloads import BatchPacker, EncodedBatch
from omnisync.omnisend.retry import RetryPolicy
from tests.openapi_contract import ValidatingTransport, validate_request

API_KEY = "omni-test-key-5f1e-SECRET"


def encoded(writes: Sequence[ContactWrite]) -> EncodedBatch:
    """``writes`` as one batch, packed as the pipeline packs them."""
    packer = BatchPacker()
    assert all(packer.pack(write) is None for write in writes), "more than one batch"
    batch = packer.flush_packed()
    assert batch is not None
    return batch


class ContractTransport(httpx.BaseTransport):
    """ValidatingTransport, plus each batch item checked as a ``POST /contacts`` body.

    The batches document types items as "anything"; the items are contact
    requests, so they are held to that operation's schema too.
    """

    def __init__(self, *, check_items: bool = True) -> None:
        self.validating = ValidatingTransport()
        self.check_items = check_items
        self.items_checked = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.check_items and request.method == "POST" and request.url.path.endswith("/batches"):
            for item in json.loads(request.read())["items"]:
                validate_request("POST", "/contacts", item)
                self.items_checked += 1
        return self.validating.handle_request(request)

    @property
    def exchanges(self) -> int:
        return self.validating.exchanges

    def close(self) -> None:
        self.validating.close()


@dataclass
class Connection:
    emulator: Emulator
    client: OmnisendClient
    transport: ContractTransport
    limiter: BrandLimiter
    clock: Clock


@pytest.fixture
def connect() -> Iterator[Callable[..., Connection]]:
    """Start an emulator and a client sharing one ScaledClock; both stopped afterwards."""
    opened: list[Connection] = []

    def make(
        *,
        scale: float = 100.0,
        api_key: str = API_KEY,
        requests_per_minute: int = 400,
        tags_per_minute: int = 60,
        emulator_requests_per_minute: int | None = None,
        emulator_tags_per_minute: int | None = None,
        check_items: bool = True,
        retry_policy: RetryPolicy | None = None,
        timeout: float = 10.0,
        safety_margin: float = 1.0,
        **emulator_options: Any,
    ) -> Connection:
        clock = ScaledClock(scale)
        emulator = Emulator(
            api_keys=(API_KEY,),
            clock=clock,
            requests_per_minute=emulator_requests_per_minute or requests_per_minute,
            tags_per_minute=emulator_tags_per_minute or tags_per_minute,
            **emulator_options,
        ).start()
        limiter = BrandLimiter(
            requests_per_minute, tags_per_minute, clock=clock, safety_margin=safety_margin
        )
        transport = ContractTransport(check_items=check_items)
        client = OmnisendClient(
            emulator.base_url,
            api_key,
            limiter=limiter,
            clock=clock,
            transport=transport,
            timeout=timeout,
            retry_policy=retry_policy,
            random=random.Random(11),
        )
        connection = Connection(emulator, client, transport, limiter, clock)
        opened.append(connection)
        return connection

    yield make
    for connection in opened:
        connection.client.close()
        connection.emulator.stop()


@dataclass
class RecordingListener:
    """A thread-safe DeliveryListener that keeps every event, and checks nothing is
    reported twice."""

    sending: dict[str, tuple[str, ...]] = field(default_factory=dict)
    created: dict[str, tuple[str, ...]] = field(default_factory=dict)
    acknowledged: list[str] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    tag_failures: list[tuple[tuple[str, ...], OmnisendError]] = field(default_factory=list)
    not_removed: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    _busy: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def _event(self, name: str) -> Iterator[None]:
        # Calls may come from several pipeline threads at once: one at a time here.
        with self._busy:
            self.events.append(name)
            yield

    def batch_sending(self, emails: tuple[str, ...]) -> str:
        with self._event("batch_sending"):
            provisional_id = f"provisional-{len(self.events)}"
            self.sending[provisional_id] = emails
            return provisional_id

    def batch_created(self, provisional_id: str, batch_id: str, emails: tuple[str, ...]) -> None:
        with self._event("batch_created"):
            # Announced before it was sent, with the same contacts.
            assert self.sending.pop(provisional_id) == emails
            assert batch_id not in self.created
            self.created[batch_id] = emails

    def batch_not_created(self, provisional_id: str, error: OmnisendError) -> None:
        with self._event("batch_not_created"):
            del self.sending[provisional_id]

    def upserts_acknowledged(self, acknowledged: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        with self._event("upserts_acknowledged"):
            for batch_id, emails in acknowledged:
                assert set(emails) <= set(self.created[batch_id])
                self.acknowledged.extend(emails)

    def upserts_failed(self, batch_id: str, failures: tuple[ItemFailure, ...]) -> None:
        with self._event("upserts_failed"):
            self.failures.extend(failures)

    def batch_abandoned(self, batch_id: str, emails: tuple[str, ...], *, reason: str = "") -> None:
        with self._event("batch_abandoned"):
            self.abandoned.extend(emails)

    def tags_added(self, tag: str, emails: tuple[str, ...]) -> None:
        with self._event("tags_added"):
            self.added.extend(emails)

    def tags_removed(self, tag: str, emails: tuple[str, ...]) -> None:
        with self._event("tags_removed"):
            self.removed.extend(emails)

    def tag_call_failed(self, tag: str, emails: tuple[str, ...], error: OmnisendError) -> None:
        with self._event("tag_call_failed"):
            self.tag_failures.append((emails, error))

    def removals_not_sent(self, tag: str, emails: tuple[str, ...]) -> None:
        with self._event("removals_not_sent"):
            self.not_removed.extend(emails)

    def sent(self) -> list[str]:
        return [email for emails in self.created.values() for email in emails]

    def assert_each_sent_contact_reported_once(self) -> None:
        """Every upsert in a created batch ends acknowledged, failed or abandoned — once."""
        reported = [*self.acknowledged, *(f.email for f in self.failures), *self.abandoned]
        assert sorted(reported) == sorted(self.sent())


def settled_log(emulator: Emulator, *, count: int, timeout: float = 5.0) -> list[RequestRecord]:
    """The request log once it holds ``count`` records.

    The emulator stamps a record just after it sends the answer, so a client
    can hold the answer a moment before the record lands.
    """
    deadline = time.monotonic() + timeout
    while True:
        log = emulator.request_log()
        if len(log) >= count or time.monotonic() > deadline:
            return log
        time.sleep(0.005)


def people(count: int, *, start: int = 0, consent: bool = False) -> list[ContactWrite]:
    """``count`` new contacts with names and a city; optionally a recorded subscription."""
    return [
        ContactWrite(
            email=f"person{index:06d}@example.com",
            fields={"firstName": f"First{index}", "lastName": "Tester", "city": "Kaunas"},
            custom_properties={"loyalty_tier": "gold" if index % 3 else "silver"},
            consent=EmailConsent(status="subscribed", changed_at="2024-05-01T09:00:00Z")
            if consent
            else None,
        )
        for index in range(start, start + count)
    ]
