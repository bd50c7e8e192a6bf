"""One log line per event, as JSON or text, with personal data and secrets scrubbed.

Every command logs under ``omnisync.*`` and calls :func:`configure_logging`
once. Scrubbing happens in the handler's formatter, so no caller can forget
it: anything that looks like an e-mail address is masked, and every secret
registered with the :class:`Redactor` becomes ``[REDACTED]``, in the message,
the fields and exception text alike.
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

from omnisync.masking import mask_emails_in

LogFormat = Literal["json", "text"]

REDACTED = "[REDACTED]"

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
    Thread-safe; secrets may be registered at any time and never appear in ``repr``."""

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
        return mask_emails_in(text)

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


class _Formatter(logging.Formatter):
    """One line per record, through ``redactor``: a JSON object (ts, level, logger, event,
    message, fields, error) or ``ts LEVEL logger event: message key=value ...``."""

    def __init__(self, redactor: Redactor, log_format: LogFormat) -> None:
        super().__init__()
        self.redactor = redactor
        self.log_format = log_format

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        timestamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event = getattr(record, "event", None)
        fields = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
        }
        error = self.formatException(record.exc_info) if record.exc_info else None
        if self.log_format == "json":
            payload: dict[str, Any] = {
                "ts": timestamp,
                "level": record.levelname.lower(),
                "logger": record.name,
                "event": event or "log",
                "message": record.getMessage(),
                "fields": fields,
            }
            if error is not None:
                payload["error"] = error
            return json.dumps(self.redactor.scrub_value(payload), ensure_ascii=False, default=str)
        line = f"{timestamp} {record.levelname} {record.name}" + (f" {event}" if event else "")
        line += f": {record.getMessage()}"
        for key, value in fields.items():
            line += f" {key}={_text_value(value)}"
        if error is not None:
            # Keep one event on one line: journald and grep both prefer it.
            line += f" error={error!r}"
        return self.redactor.scrub(line.replace("\n", "\\n"))


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if (" " in value or not value) else value
    return json.dumps(value, ensure_ascii=False, default=str)


_HANDLER_NAME = "omnisync"


def configure_logging(
    *,
    log_format: LogFormat = "text",
    level: str = "INFO",
    stream: TextIO | None = None,
    redactor: Redactor | None = None,
) -> Redactor:
    """Route the ``omnisync`` logger tree to ``stream`` (stderr) in ``log_format``.

    Idempotent: calling again replaces the handler (the daemon does so when
    the configured format differs from the command line's). Returns the
    redactor in use, so the caller can register secrets with it.
    """
    redactor = redactor or Redactor()
    level_number = logging.getLevelName(level.upper())
    if not isinstance(level_number, int):
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_Formatter(redactor, log_format))
    for logger_name in ("omnisync", "apscheduler"):
        logger = logging.getLogger(logger_name)
        for existing in list(logger.handlers):
            if existing.get_name() == _HANDLER_NAME:
                logger.removeHandler(existing)
        logger.addHandler(handler)
    logging.getLogger("omnisync").setLevel(level_number)
    # APScheduler's own chatter ("Added job ...") is noise at INFO; our events say it better.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return redactor
