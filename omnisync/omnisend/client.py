"""The HTTP client for Omnisend (API version 2026-03-15): the only code that sends requests.

A shell: it owns one pooled ``httpx.Client`` (see
:func:`~omnisync.omnisend.session.open_http`: kept-alive connections, the
~10 s timeouts Omnisend advises, proxies and certificate authorities from the
environment) and gets everything else injected (the brand's
:class:`~omnisync.omnisend.pacing.BrandLimiter`, a clock, an optional httpx
transport, a retry policy, an observer, a random source). One private choke
point, :meth:`OmnisendClient._send`, does pacing, sending, retries, error
mapping, logging and observer callbacks for every request.

Thread-safe: one client per connection is shared by every export and thread.
The API key is sent in the ``Authorization`` header only; it never appears in
``repr``, log lines or exception messages (server-supplied text is scrubbed
of it before it is logged or raised).
"""

from __future__ import annotations

import logging
import random as random_module
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

import httpx

from omnisync import __version__
from omnisync.clock import Clock
from omnisync.contact import ContactWrite
from omnisync.masking import mask_email
from omnisync.omnisend.batches import poll_round
from omnisync.omnisend.errors import (
    ApiError,
    OmnisendError,
    RateLimited,
    RequestCancelled,
    TransportError,
    UnexpectedResponse,
    api_error,
    scrub_secret,
)
from omnisync.omnisend.model import API_VERSION, BatchOutcome
from omnisync.omnisend.observer import (
    ClientObserver,
    NullObserver,
    log_failed,
    log_rate_limited,
    log_retry,
    mask_emails_in_httpx_logs,
)
from omnisync.omnisend.pacing import BrandLimiter, Kind
from omnisync.omnisend.payloads import (
    MAX_TAG_EMAILS,
    EncodedBatch,
    check_batch,
    contact_body,
    encode_json,
    tags_body,
)
from omnisync.omnisend.retry import RATE_LIMITED, RetryPolicy, is_transient, retry_after_seconds
from omnisync.omnisend.session import failure_reason, json_object, open_http, problem_document

logger = logging.getLogger("omnisync.omnisend")


class OmnisendClient:
    """Omnisend's contacts, batches and tags endpoints, paced, retried and typed.

    ``base_url`` is the API root (``https://api.omnisend.com/api`` or the
    emulator's). ``limiter`` is the brand's shared limiter. ``transport`` is
    an httpx transport (tests wrap the real one to check the contract; without
    one, httpx's own, with the environment's proxies); ``timeout`` bounds each
    phase of a request (connect, read, write, pool), in real seconds. Errors are the
    :mod:`omnisync.omnisend.errors` tree.
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
        if not api_key or not api_key.isascii() or not api_key.isprintable() or " " in api_key:
            # Checked here so that httpx never echoes a malformed key in its own error.
            raise ValueError(
                "the Omnisend API key is empty or contains spaces or non-ASCII characters; "
                "check the secret the connection's api_key refers to"
            )
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
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
        """Close the connection pool. The client is unusable afterwards."""
        self._http.close()

    def __enter__(self) -> OmnisendClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- operations -------------------------------------------------------

    def create_batch(
        self,
        writes: Sequence[ContactWrite] | EncodedBatch,
        *,
        cancelled: Callable[[], bool] | None = None,
    ) -> str:
        """Create one contacts batch (upserts) and return its id.

        ``cancelled`` is asked once the request has its rate-limit slot, before
        anything is sent: true raises :class:`RequestCancelled` (nothing was
        sent). Once an attempt may have reached Omnisend (a retry after a
        dropped answer or a 5xx), the request is finished, not cancelled.

        Refuses (:class:`BatchTooLarge`) more than 100 writes or a body over
        1 MB: pack them with :class:`~omnisync.omnisend.payloads.BatchPacker`
        first. An :class:`~omnisync.omnisend.payloads.EncodedBatch` (what the
        ``BatchPacker`` packs) is sent as the bytes it was measured with,
        without encoding it again. Omnisend processes the batch
        asynchronously; follow it with :meth:`poll_batches` or
        :meth:`wait_for_batches`.
        """
        operation = f"create a batch of {len(writes)} contact(s)"
        items = (
            writes.items
            if isinstance(writes, EncodedBatch)
            else [encode_json(contact_body(write)) for write in writes]
        )
        body = check_batch(items, operation=operation)
        response = self._send(
            "POST",
            "batches",
            endpoint="POST /batches",
            operation=operation,
            kind="batches",
            content=body,
            cancelled=cancelled,
        )
        data = json_object(response, operation)
        batch_id = data.get("batchID")
        if not isinstance(batch_id, str) or not batch_id:
            raise UnexpectedResponse(operation, "no batchID in the answer")
        logger.debug(
            "created batch %s with %d contacts",
            batch_id,
            len(writes),
            extra={"event": "omnisend.batch_created", "batch_id": batch_id, "items": len(writes)},
        )
        return batch_id

    def poll_batches(self, pending: Mapping[str, Collection[str]]) -> list[BatchOutcome]:
        """One polling round: the outcomes of those ``pending`` batches that are now done.

        ``pending`` maps a batch id to the e-mails sent in it. See
        :func:`omnisync.omnisend.batches.poll_round`: usually one listing call
        covers every batch in flight; a batch that stopped or reports errors
        costs one more call for its items; a batch Omnisend no longer knows
        (404) is reported ``stopped`` with nothing accepted.
        """
        return poll_round(self._get_json, pending)

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

    def add_tag(self, tag: str, emails: Sequence[str]) -> None:
        """Add ``tag`` to the contacts with these e-mails (1 to 250). Omnisend applies it
        asynchronously and silently ignores e-mails it does not know."""
        self._tags_call("POST", tag, emails, verb="add")

    def remove_tag(self, tag: str, emails: Sequence[str]) -> None:
        """Remove ``tag`` from the contacts with these e-mails (1 to 250); asynchronous."""
        self._tags_call("DELETE", tag, emails, verb="remove")

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

    # -- helpers ----------------------------------------------------------

    def _tags_call(self, method: str, tag: str, emails: Sequence[str], *, verb: str) -> None:
        operation = f"{verb} the tag {tag!r} for {len(emails)} contact(s)"
        if not tag:
            raise ValueError(f"{operation}: the tag is empty")
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
            content=encode_json(tags_body(tag, emails)),
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
    ) -> httpx.Response:
        """The choke point: pace, send, retry, map errors, log and observe one request.

        Returns the 2xx response; raises the typed error once the retry
        policy gives up (or at once for a status that is never retried).
        ``cancelled`` (see :meth:`create_batch`) is asked after each wait for
        a slot while no attempt can have been processed (none yet, or 429s).
        """
        failures = 0  # transient failures (408, 5xx, transport) of this request
        rate_limited = 0
        rate_limit_waited = 0.0
        while True:
            slot = self._limiter.acquire(kind)
            if slot.waited > 0:
                self._observer.limiter_waited(kind, slot.waited)
            if cancelled is not None and not failures and cancelled():
                # Checked after the wait: a run stopped meanwhile sends nothing more.
                self._limiter.done(slot, sent=False)
                raise RequestCancelled(operation)
            started = self._clock.now()
            try:
                response = self._http.request(method, path, params=params, content=content)
            except httpx.RequestError as transport_error:
                reason = self._scrub(failure_reason(transport_error))
                self._limiter.done(slot)  # it may have reached Omnisend before it failed
                self._observer.request_finished(endpoint, None, self._clock.now() - started)
                failures += 1
                if self._back_off(endpoint, reason, failures=failures):
                    continue
                raise TransportError(operation, reason, attempts=failures) from None
            # Counted from now on: the latest moment Omnisend can have received it.
            self._limiter.done(slot)
            status = response.status_code
            self._observer.request_finished(endpoint, status, self._clock.now() - started)
            if 200 <= status < 300:
                return response
            problem = problem_document(response, self._api_key)
            raw_instance = problem.get("instance")
            instance = raw_instance if isinstance(raw_instance, str) else ""
            if status == RATE_LIMITED:
                rate_limited += 1
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
                    raise self._error(operation, status, problem)
                rate_limit_waited += delay
                # Pausing the limiter (not just sleeping here) keeps every other
                # thread of the brand from sending before the pause ends too.
                self._limiter.penalise(delay)
                self._observer.rate_limited(endpoint, delay)
                log_rate_limited(logger, endpoint, delay=delay, instance=instance)
                continue
            if is_transient(status):
                failures += 1
                if self._back_off(
                    endpoint, f"status {status}", failures=failures, instance=instance
                ):
                    continue
            error = self._error(operation, status, problem)
            log_failed(logger, endpoint, error, status=status, instance=instance)
            raise error

    def _error(self, operation: str, status: int, problem: Mapping[str, Any]) -> ApiError:
        error = api_error(operation, status, problem)
        if isinstance(error, RateLimited):
            logger.warning(
                "%s: still rate limited after waiting %.0f s; giving up",
                operation,
                self._policy.rate_limit_budget,
                extra={"event": "omnisend.rate_limit_budget_exhausted"},
            )
        return error

    def _scrub(self, text: str) -> str:
        return str(scrub_secret(text, self._api_key))

    def _back_off(self, endpoint: str, reason: str, *, failures: int, instance: str = "") -> bool:
        """After a transient failure: wait the policy's backoff and return ``True`` (retry),
        or return ``False`` when the request's attempts are used up."""
        delay = self._policy.transient_delay(failures, random=self._random)
        if delay is None:
            return False
        log_retry(
            logger,
            endpoint,
            reason,
            delay=delay,
            attempt=failures,
            attempts=self._policy.max_attempts,
            instance=instance,
        )
        self._clock.sleep(delay)
        return True


__all__ = ["MAX_TAG_EMAILS", "ClientObserver", "NullObserver", "OmnisendClient", "OmnisendError"]
