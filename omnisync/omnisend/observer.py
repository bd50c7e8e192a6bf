"""What the client tells the outside about its requests: metrics callbacks and log hygiene.

:class:`ClientObserver` is how the daemon turns requests, 429s and limiter
waits into Prometheus metrics (the client calls it from the requesting
thread). :func:`mask_emails_in_httpx_logs` keeps httpx's own ``HTTP Request:``
log lines, which print the URL, from carrying the ``email=`` of a contact
lookup: logs never print a full e-mail address (docs/design.md).
"""

from __future__ import annotations

import logging
import re
from typing import Protocol
from urllib.parse import quote, unquote

from omnisync.masking import mask_email
from omnisync.omnisend.pacing import Kind


class ClientObserver(Protocol):
    """What the client reports for metrics. Called from the requesting thread; must not block."""

    def request_finished(self, endpoint: str, status: int | None, seconds: float) -> None:
        """One attempt ended: ``endpoint`` is a template such as ``"GET /batches/{batchID}"``,
        ``status`` is ``None`` for a transport error, ``seconds`` the clock time it took."""

    def rate_limited(self, endpoint: str, retry_after: float) -> None:
        """Omnisend answered 429; the whole brand now waits ``retry_after`` seconds."""

    def limiter_waited(self, kind: Kind, seconds: float) -> None:
        """A request waited ``seconds`` for a slot of the brand's limiter (``kind`` is
        ``"general"``, ``"tags"`` or ``"batches"``)."""


class NullObserver:
    """The default observer: ignores everything."""

    def request_finished(self, endpoint: str, status: int | None, seconds: float) -> None:
        pass

    def rate_limited(self, endpoint: str, retry_after: float) -> None:
        pass

    def limiter_waited(self, kind: Kind, seconds: float) -> None:
        pass


def log_retry(
    logger: logging.Logger,
    endpoint: str,
    reason: str,
    *,
    delay: float,
    attempt: int,
    attempts: int,
    instance: str = "",
) -> None:
    """Log (warning) that a request to ``endpoint`` failed and is retried after ``delay``."""
    logger.warning(
        "%s failed (%s%s); attempt %d of %d, retrying in %.1f s",
        endpoint,
        reason,
        f", trace {instance}" if instance else "",
        attempt,
        attempts,
        delay,
        extra={
            "event": "omnisend.retry",
            "endpoint": endpoint,
            "reason": reason,
            "instance": instance,
            "delay": delay,
            "attempt": attempt,
        },
    )


def log_rate_limited(
    logger: logging.Logger, endpoint: str, *, delay: float, instance: str = ""
) -> None:
    """Log (info) that ``endpoint`` answered 429 and the brand now waits ``delay`` seconds."""
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


def log_failed(
    logger: logging.Logger, endpoint: str, error: Exception, *, status: int, instance: str = ""
) -> None:
    """Log (warning) that a request to ``endpoint`` failed for good with ``error``."""
    logger.warning(
        "%s failed: %s",
        endpoint,
        error,
        extra={
            "event": "omnisend.request_failed",
            "endpoint": endpoint,
            "status": status,
            "instance": instance,
        },
    )


_EMAIL_QUERY = re.compile(r"(?<=[?&]email=)[^&#\s\"]+")


class _MaskEmailQueries(logging.Filter):
    """Masks the value of ``email=`` query parameters in a record's arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            "email=" in str(argument) for argument in record.args
        ):
            record.args = tuple(
                _mask_query(str(argument)) if "email=" in str(argument) else argument
                for argument in record.args
            )
        return True


def _mask_query(text: str) -> str:
    return _EMAIL_QUERY.sub(lambda match: quote(mask_email(unquote(match.group(0)))), text)


_MASK_EMAIL_QUERIES = _MaskEmailQueries()


def mask_emails_in_httpx_logs() -> None:
    """Install the filter that masks ``email=`` in httpx's log lines; installing it again
    changes nothing (a logger holds one filter object once)."""
    logging.getLogger("httpx").addFilter(_MASK_EMAIL_QUERIES)
