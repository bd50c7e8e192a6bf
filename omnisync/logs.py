"""One log line per event, as JSON or text, with personal data and secrets scrubbed.

Every command logs through the standard :mod:`logging` tree under
``omnisync.*`` and calls :func:`configure_logging` once. A line is either one
JSON object (``ts``, ``level``, ``logger``, ``event``, ``message``,
``fields``) or a compact text line; journald keeps either as one entry.

Scrubbing happens on the way out, in the handler's formatter, so that no
caller can forget it: anything that looks like an e-mail address is masked
with :func:`omnisync.masking.mask_email`, and every secret value registered
with the :class:`Redactor` (the daemon registers each API key it resolves) is
replaced by ``[REDACTED]`` — in the message, in structured fields and in
exception text alike.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from omnisync.masking import mask_email

LogFormat = Literal["json", "text"]

REDACTED = "[REDACTED]"

#: Looks like an address: something@something.tld, without whitespace or quoting characters;
#: also percent-encoded (``%40``), as it appears in a URL's query (``?email=...``).
_ADDRESS_PART = r"[^\s@\"'<>()\[\]{},;:=/\\&?#]+"
_EMAIL = re.compile(rf"{_ADDRESS_PART}(?:@|%40){_ADDRESS_PART}\.{_ADDRESS_PART}", re.IGNORECASE)

#: Secrets shorter than this are not redacted as substrings: masking "a" everywhere helps no one.
_MINIMUM_SECRET_LENGTH = 4

#: Attributes every LogRecord has; anything else on a record came from ``extra=`` and is a field.
_STANDARD_ATTRIBUTES = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
        "message",
        "asctime",
        "event",
        "taskName",
    }
)


class Redactor:
    """Scrubs strings: masks e-mail addresses, replaces registered secret values.

    Thread-safe; secrets can be registered at any time (on every reload).
    A secret is never stored anywhere else and never appears in ``repr``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"

    def register(self, secrets: Iterable[str]) -> None:
        """Add ``secrets`` (values) to those replaced in every scrubbed string."""
        with self._lock:
            usable = {value for value in secrets if len(value) >= _MINIMUM_SECRET_LENGTH}
            self._secrets = self._secrets | usable
            # Longest first so that a secret containing another is replaced whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def scrub(self, text: str) -> str:
        """``text`` with secrets replaced and e-mail addresses masked."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        if "@" in text or "%40" in text:
            # ``olena%40example.com`` is decoded first, so that it masks like any address.
            text = _EMAIL.sub(lambda match: mask_email(match.group(0).replace("%40", "@", 1)), text)
        return text

    def scrub_value(self, value: Any) -> Any:
        """Scrub every string inside ``value`` (JSON-like data), keeping its shape."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {str(key): self.scrub_value(item) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub_value(item) for item in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.scrub(str(value))


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a caller passed with ``extra=``, minus ``event``."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
    }


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _ScrubbingFormatter(logging.Formatter):
    """A formatter whose every line goes through ``redactor``."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor


class JsonFormatter(_ScrubbingFormatter):
    """One JSON object per line: ts, level, logger, event, message, fields (all scrubbed)."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or "log",
            "message": record.getMessage(),
            "fields": record_fields(record),
        }
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return json.dumps(self.redactor.scrub_value(payload), ensure_ascii=False, default=str)


class TextFormatter(_ScrubbingFormatter):
    """``ts LEVEL logger event: message key=value ...`` on one line (scrubbed)."""

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", None)
        head = f"{_timestamp(record)} {record.levelname} {record.name}"
        message = record.getMessage()
        line = f"{head} {event}: {message}" if event else f"{head}: {message}"
        fields = record_fields(record)
        if fields:
            rendered = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
            line = f"{line} {rendered}"
        if record.exc_info:
            # Keep one event on one line: journald and grep both prefer it.
            line = f"{line} error={self.formatException(record.exc_info)!r}"
        return self.redactor.scrub(line.replace("\n", "\\n"))


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if (" " in value or not value) else value
    return json.dumps(value, ensure_ascii=False, default=str)


_HANDLER_NAME = "omnisync"


def configure_logging(
    *,
    log_format: LogFormat = "text",
    level: str | int = "INFO",
    stream: TextIO | None = None,
    redactor: Redactor | None = None,
) -> Redactor:
    """Route the ``omnisync`` logger tree to ``stream`` (stderr) in ``log_format``.

    Idempotent: calling again replaces the handler (the daemon does so when
    the configured format differs from the command line's). Returns the
    redactor in use, so the caller can register secrets with it.
    """
    redactor = redactor or Redactor()
    formatter: logging.Formatter = (
        JsonFormatter(redactor) if log_format == "json" else TextFormatter(redactor)
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    for logger_name in ("omnisync", "apscheduler"):
        logger = logging.getLogger(logger_name)
        for existing in list(logger.handlers):
            if existing.get_name() == _HANDLER_NAME:
                logger.removeHandler(existing)
        logger.addHandler(handler)
    logging.getLogger("omnisync").setLevel(_level(level))
    # APScheduler's own chatter ("Added job ...") is noise at INFO; our events say it better.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return redactor


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    resolved = logging.getLevelName(level.upper())
    if not isinstance(resolved, int):
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    return resolved
