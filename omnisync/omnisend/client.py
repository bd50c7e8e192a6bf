"""The HTTP client for Omnisend (API version 2026-03-15): the only code that sends requests.

One choke point, :meth:`OmnisendClient._send`, paces, sends, retries, maps errors,
logs and observes every request through one pooled ``httpx.Client`` (:func:`open_http`).
Thread-safe: one client per connection serves every export and thread. The API key goes
in the ``Authorization`` header only, never in a ``repr``, log line or message
(server-supplied text is scrubbed of it first).
"""

from __future__ import annotations

import contextlib
import logging
import random as random_module
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import orjson

from omnisync import __version__
from omnisync.clock import Clock
from omnisync.config.secrets import header_value_problem
from omnisync.masking import mask_email
from omnisync.omnisend.batches import BatchOutcome, poll_round, unfinished_batches
from omnisync.omnisend.errors import (
    API_VERSION,
    ApiError,
    RequestCancelled,
    TransportError,
    UnexpectedResponse,
    scrub_secret,
)
from omnisync.omnisend.observer import ClientObserver, NullObserver, mask_emails_in_httpx_logs
from omnisync.omnisend.pacing import BrandLimiter, Kind
from omnisync.omnisend.payloads import MAX_TAG_EMAILS, EncodedBatch
from omnisync.omnisend.retry import RetryPolicy, is_transient, retry_after_seconds
from omnisync.omnisend.transport import json_object, open_http

logger = logging.getLogger("omnisync.omnisend")

MAX_REASON_CHARS = 200


#: Transport errors before any byte of the request left: it cannot have been processed.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class OmnisendClient:
    """Omnisend's contacts, batches and tags endpoints, paced, retried and typed.

    ``limiter`` is the brand's shared limiter; ``timeout`` bounds each phase of a
    request (real seconds); ``transport``, ``request_gate``: see :func:`open_http`.
    Raises ``ValueError`` for a malformed key; requests raise the errors tree.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        limiter: BrandLimiter,
        clock: Clock,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        retry_policy: RetryPolicy | None = None,
        observer: ClientObserver | None = None,
        random: random_module.Random | None = None,
        request_gate: Callable[[], None] | None = None,
    ) -> None:
        if not api_key or header_value_problem(api_key):
            # Checked here so that httpx never echoes a malformed key in its own error.
            raise ValueError(
                "the Omnisend API key is empty or contains spaces or non-ASCII characters; "
                "check the secret the connection's api_key refers to"
            )
        mask_emails_in_httpx_logs()
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._limiter = limiter
        self._clock = clock
        self._policy = retry_policy or RetryPolicy()
        self._observer: ClientObserver = observer or NullObserver()
        self._random = random or random_module.Random()
        self._http = open_http(
            self.base_url,
            headers={
                "Authorization": f"Omnisend-API-Key {api_key}",
                "Omnisend-Version": API_VERSION,
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"omnisync/{__version__}",
            },
            transport=transport,
            timeout=timeout,
            request_gate=request_gate,
        )

    def __repr__(self) -> str:
        return f"OmnisendClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OmnisendClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create_batch(
        self, batch: EncodedBatch, *, cancelled: Callable[[], bool] | None = None
    ) -> str:
        """Create one contacts batch (upserts, processed asynchronously); return its id.

        ``batch`` is sent as the very bytes ``BatchPacker`` measured. ``cancelled`` is
        asked once the request has its rate-limit slot, before any attempt can reach
        Omnisend: true raises :class:`RequestCancelled`. A batch that carries consent
        records is sent once, never retried after a failure that may have created it
        (no answer, 408, 5xx): a second batch would repeat its consent records, which
        Omnisend keeps. The error says so (``TransportError``, or ``ApiError`` with
        ``maybe_processed``), and the caller looks those contacts up later."""
        operation = f"create a batch of {len(batch)} contact(s)"
        response = self._send(
            "POST",
            "batches",
            endpoint="POST /batches",
            operation=operation,
            kind="batches",
            content=batch.body(),
            cancelled=cancelled,
            repeatable=not batch.carries_consent,
        )
        data = json_object(response, operation)
        batch_id = data.get("batchID")
        if not isinstance(batch_id, str) or not batch_id:
            raise UnexpectedResponse(operation, "no batchID in the answer")
        logger.debug(
            "created batch %s with %d contacts",
            batch_id,
            len(batch),
            extra={"event": "omnisend.batch_created", "batch_id": batch_id, "items": len(batch)},
        )
        return batch_id

    def transient_backoff(self, failures: int) -> float:
        """The retry policy's backoff after ``failures`` failures in a row, for a caller
        that must not send a request again but should not hurry on either."""
        return self._policy.backoff(failures, random=self._random)

    def poll_batches(self, pending: Mapping[str, Collection[str]]) -> list[BatchOutcome]:
        """One polling round (:func:`~omnisync.omnisend.batches.poll_round`): the outcomes of
        those ``pending`` batches (id -> e-mails sent) that are now done."""
        return poll_round(self._get_json, pending)

    def unfinished_batches(self, *, created_from: datetime, created_until: datetime) -> int:
        """:func:`~omnisync.omnisend.batches.unfinished_batches` of this brand."""
        return unfinished_batches(
            self._get_json, created_from=created_from, created_until=created_until
        )

    def wait_for_batches(
        self,
        pending: Mapping[str, Collection[str]],
        *,
        poll_interval: float = 2.0,
        timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[BatchOutcome]:
        """Yield each pending batch's outcome as it is done, polling every ``poll_interval``
        clock seconds until none is left, ``timeout`` clock seconds have passed or
        ``stop`` is set (the batches not yielded then are still processing)."""
        remaining = dict(pending)
        deadline = None if timeout is None else self._clock.now() + timeout
        while remaining:
            for outcome in self.poll_batches(remaining):
                del remaining[outcome.batch_id]
                yield outcome
            out_of_time = deadline is not None and self._clock.now() >= deadline
            if not remaining or out_of_time or (stop is not None and stop.is_set()):
                return
            self._clock.sleep(poll_interval)

    def add_tag(
        self, tag: str, emails: Sequence[str], *, cancelled: Callable[[], bool] | None = None
    ) -> None:
        """Add ``tag`` to the contacts with these e-mails (1 to 250). Omnisend applies it
        asynchronously and silently ignores e-mails it does not know. ``cancelled``: as
        :meth:`create_batch` takes it."""
        self._tags_call("POST", tag, emails, verb="add", cancelled=cancelled)

    def remove_tag(
        self, tag: str, emails: Sequence[str], *, cancelled: Callable[[], bool] | None = None
    ) -> None:
        """Remove ``tag`` from the contacts with these e-mails (1 to 250); asynchronous.
        ``cancelled``: as :meth:`create_batch` takes it."""
        self._tags_call("DELETE", tag, emails, verb="remove", cancelled=cancelled)

    def get_contact(self, email: str) -> dict[str, Any] | None:
        """The contact whose e-mail identifier is exactly ``email``, or ``None``."""
        operation = f"get the contact {mask_email(email)}"
        data = self._get_json(
            "contacts",
            endpoint="GET /contacts",
            operation=operation,
            params={"email": email, "limit": "1"},
        )
        contacts = data.get("contacts")
        if not isinstance(contacts, list):
            raise UnexpectedResponse(operation, "no contacts list in the answer")
        for contact in contacts:
            if isinstance(contact, dict) and contact.get("email") == email:
                return contact
        return None

    def _tags_call(
        self,
        method: str,
        tag: str,
        emails: Sequence[str],
        *,
        verb: str,
        cancelled: Callable[[], bool] | None,
    ) -> None:
        operation = f"{verb} the tag {tag!r} for {len(emails)} contact(s)"
        if not 1 <= len(emails) <= MAX_TAG_EMAILS:
            raise ValueError(
                f"{operation}: a tags call takes 1 to {MAX_TAG_EMAILS} e-mails, got {len(emails)}"
            )
        self._send(
            method,
            "contacts/tags",
            endpoint=f"{method} /contacts/tags",
            operation=operation,
            kind="tags",
            content=orjson.dumps({"emails": list(emails), "tags": [tag]}),
            cancelled=cancelled,
        )

    def _get_json(
        self,
        path: str,
        *,
        endpoint: str,
        operation: str,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        response = self._send("GET", path, endpoint=endpoint, operation=operation, params=params)
        return json_object(response, operation)

    def _send(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        operation: str,
        kind: Kind = "general",
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        cancelled: Callable[[], bool] | None = None,
        repeatable: bool = True,
    ) -> httpx.Response:
        """Pace, send, retry, map errors, log and observe one request; the 2xx response, or
        the typed error once the retry policy gives up. ``cancelled``: see :meth:`create_batch`;
        not ``repeatable``: a transient failure that may have been processed (408, 5xx, no
        answer) is not retried; a 429 or a connection never made still is."""
        failures = 0  # transient failures (408, 5xx, transport) of this request
        unanswered = False  # an attempt got no answer: it may have been processed
        rate_limited = 0
        rate_limited_since = 0.0  # the clock time of this request's first 429
        while True:
            # Not once it failed: a retry of what Omnisend may have processed goes on.
            watch = cancelled if not failures else None
            slot = self._limiter.acquire(kind, cancelled=watch)
            if slot is not None and slot.waited > 0:
                self._observer.limiter_waited(kind, slot.waited)
            if slot is None or (watch is not None and watch()):
                # Also checked after the wait: a run stopped meanwhile sends nothing more.
                if slot is not None:
                    self._limiter.done(slot, sent=False)
                raise RequestCancelled(operation)
            started = self._clock.now()
            response: httpx.Response | None = None
            never_sent = False
            try:
                response = self._http.request(method, path, params=params, content=content)
            except httpx.RequestError as transport_error:
                # No connection was made: the request never reached Omnisend.
                never_sent = isinstance(transport_error, _NEVER_SENT)
                # E.g. "ConnectError: [Errno 111] Connection refused"; never a request
                # header. Scrubbed before the cut, or a key across it would leave a part.
                reason = f"{type(transport_error).__name__}: {transport_error}".rstrip(": ")
                reason = str(scrub_secret(reason, self._api_key))[:MAX_REASON_CHARS]
            # Counted from now on: the latest moment Omnisend can have received it
            # (a failed attempt too may have reached it).
            self._limiter.done(slot)
            unanswered = unanswered or (response is None and not never_sent)
            status = None if response is None else response.status_code
            self._observer.request_finished(endpoint, status, self._clock.now() - started)
            problem: dict[str, Any] = {}
            error: ApiError | None = None
            if response is not None:
                if 200 <= response.status_code < 300:
                    return response
                with contextlib.suppress(UnexpectedResponse):  # not a JSON object: {}
                    problem = scrub_secret(json_object(response, ""), self._api_key)
                reason = f"status {response.status_code}"
                error = ApiError(
                    operation,
                    status=response.status_code,
                    problem=problem,
                    after_unanswered=unanswered,
                    endpoint=endpoint,
                )
            instance = "" if error is None else error.instance
            if response is not None and error is not None and error.status == 429:
                if not rate_limited:
                    rate_limited_since = self._clock.now()
                rate_limited += 1
                # The clock time since, not a sum of our own delays: the limiter's real
                # waits include the pauses other threads of the brand imposed.
                rate_limit_waited = self._clock.now() - rate_limited_since
                retry_after = retry_after_seconds(
                    problem.get("retryAfter"),
                    response.headers.get("Retry-After"),
                    wall_now=self._clock.wall(),
                )
                delay = self._policy.rate_limit_delay(
                    retry_after=retry_after,
                    rate_limited=rate_limited,
                    waited=rate_limit_waited,
                    random=self._random,
                )
                if delay is None:
                    logger.warning(
                        "%s: still rate limited after waiting %.0f s; giving up",
                        operation,
                        rate_limit_waited,
                        extra={"event": "omnisend.rate_limit_budget_exhausted"},
                    )
                    budget = self._policy.rate_limit_budget
                    if retry_after is not None and retry_after > budget:
                        # One wait asked for, longer than the budget: not a storm.
                        wait = f"Omnisend asked for a wait of {retry_after:.0f} s, more than"
                        advice = f"{wait} the {budget:.0f} s allowed; run again later"
                        raise ApiError(operation, status=429, problem=problem, advice=advice)
                    raise error
                # Pausing the limiter (not just sleeping here) keeps every other
                # thread of the brand from sending before the pause ends too.
                self._limiter.penalise(delay)
                self._observer.rate_limited(endpoint, delay)
                logger.info(
                    "%s answered 429; the brand waits %.1f s (trace %s)",
                    endpoint,
                    delay,
                    instance or "none",
                    extra={
                        "event": "omnisend.rate_limited",
                        "endpoint": endpoint,
                        "retry_after": delay,
                        "instance": instance,
                    },
                )
                continue
            if is_transient(status):
                failures += 1
                delay = self._policy.transient_delay(failures, random=self._random)
                if not repeatable and not never_sent:
                    delay = None  # it may have been processed: not sent again
                if delay is not None:
                    logger.warning(
                        "%s failed (%s%s); attempt %d of %d, retrying in %.1f s",
                        endpoint,
                        reason,
                        f", trace {instance}" if instance else "",
                        failures,
                        self._policy.max_attempts,
                        delay,
                        extra={
                            "event": "omnisend.retry",
                            "endpoint": endpoint,
                            "reason": reason,
                            "instance": instance,
                            "delay": delay,
                            "attempt": failures,
                        },
                    )
                    self._clock.sleep(delay)
                    continue
            if error is None:
                raise TransportError(
                    operation, reason, attempts=failures, maybe_processed=unanswered
                )
            logger.warning(
                "%s failed: %s",
                endpoint,
                error,
                extra={
                    "event": "omnisend.request_failed",
                    "endpoint": endpoint,
                    "status": error.status,
                    "instance": instance,
                },
            )
            raise error
