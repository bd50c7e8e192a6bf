from __future__ import annotations

import io
import json
import logging

import pytest

from omnisync.logs import REDACTED, Redactor, configure_logging


@pytest.fixture
def capture():
    stream = io.StringIO()
    redactor = configure_logging(log_format="json", level="DEBUG", stream=stream)
    yield stream, redactor
    configure_logging(log_format="text", level="INFO")


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_the_documented_keys(capture):
    stream, _ = capture
    logging.getLogger("omnisync.test").info(
        "scheduled %s", "vip", extra={"event": "export_scheduled", "export": "vip", "count": 3}
    )
    (line,) = lines(stream)
    assert set(line) == {"ts", "level", "logger", "event", "message", "fields"}
    assert line["level"] == "info"
    assert line["logger"] == "omnisync.test"
    assert line["event"] == "export_scheduled"
    assert line["message"] == "scheduled vip"
    assert line["fields"] == {"export": "vip", "count": 3}
    assert line["ts"].endswith("Z")


def test_emails_are_masked_everywhere(capture):
    stream, _ = capture
    log = logging.getLogger("omnisync.test")
    log.warning(
        "bad row for olena.kovalenko@example.com",
        extra={"event": "x", "who": ["marko.petrenko@example.org"]},
    )
    try:
        raise ValueError("contact jan.kowalski@example.pl refused")
    except ValueError:
        log.exception("failed", extra={"event": "y"})
    text = stream.getvalue()
    assert "olena.kovalenko@example.com" not in text
    assert "marko.petrenko@example.org" not in text
    assert "jan.kowalski@example.pl" not in text
    assert "o***o@e***e.com" in text


def test_percent_encoded_emails_in_urls_are_masked(capture):
    stream, _ = capture
    logging.getLogger("omnisync.test").info(
        "GET https://api.omnisend.com/api/contacts?email=olena.kovalenko%40example.com&limit=1",
        extra={"event": "http"},
    )
    text = stream.getvalue()
    assert "olena.kovalenko" not in text
    assert "o***o@e***e.com" in text
    assert "&limit=1" in text


def test_addresses_ending_in_a_quoting_character_are_masked(capture):
    # PostgreSQL quotes a row's value as "neil'@example.com"; RFC 5322 allows ' / # { }.
    stream, _ = capture
    logging.getLogger("omnisync.test").warning(
        'bad value: "neil\'@example.com", a/@example.org and {x}@example.net',
        extra={"event": "x"},
    )
    text = stream.getvalue()
    assert "example.com" not in text
    assert "example.org" not in text
    assert "example.net" not in text


def test_registered_secrets_are_redacted_in_message_fields_and_tracebacks(capture):
    stream, redactor = capture
    secret = 'sk-live-"quoted"-1234567890'
    redactor.register([secret])
    log = logging.getLogger("omnisync.test")
    log.error("key %s rejected", secret, extra={"event": "z", "key": secret})
    try:
        raise RuntimeError(f"boom {secret}")
    except RuntimeError:
        log.exception("crash", extra={"event": "z"})
    text = stream.getvalue()
    assert secret not in text
    assert json.dumps(secret)[1:-1] not in text
    assert text.count(REDACTED) >= 3
    assert secret not in repr(redactor)


def test_text_format_is_one_line_per_event():
    stream = io.StringIO()
    redactor = configure_logging(log_format="text", level="INFO", stream=stream)
    redactor.register(["hunter2-secret"])
    log = logging.getLogger("omnisync.test")
    log.debug("hidden", extra={"event": "hidden"})
    try:
        raise RuntimeError("multi\nline hunter2-secret")
    except RuntimeError:
        log.exception(
            "config reload failed for a@b.example",
            extra={"event": "config_reload_failed", "file": "x.yaml"},
        )
    output = stream.getvalue()
    assert output.count("\n") == 1
    assert "config_reload_failed: config reload failed for *@*.example" in output
    assert "file=x.yaml" in output
    assert "hunter2-secret" not in output
    assert "hidden" not in output


def test_short_values_are_not_treated_as_secrets():
    redactor = Redactor()
    redactor.register(["ab", ""])
    assert redactor.scrub("abc") == "abc"


def test_unknown_level_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(level="loud")
