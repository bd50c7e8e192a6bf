"""What the client tells the outside: :class:`ClientObserver` (metrics callbacks), and
:func:`mask_emails_in_httpx_logs` (httpx's own ``HTTP Request:`` lines print the URL,
so the ``email=`` of a contact lookup is masked there)."""

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


_EMAIL_QUERY = re.compile(r"(?<=[?&]email=)[^&#\s\"]+")


def _mask_email_queries(record: logging.LogRecord) -> bool:
    if isinstance(record.args, tuple):
        record.args = tuple(
            _EMAIL_QUERY.sub(_masked, str(argument)) if "email=" in str(argument) else argument
            for argument in record.args
        )
    return True


def _masked(match: re.Match[str]) -> str:
    return quote(mask_email(unquote(match.group(0))))


def mask_emails_in_httpx_logs() -> None:
    """Install the filter that masks ``email=`` in httpx's log lines (idempotent)."""
    logging.getLogger("httpx").addFilter(_mask_email_queries)
