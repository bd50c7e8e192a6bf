"""A database driver's message shows neither the DSN nor a password from it."""

from __future__ import annotations

import pytest

from omnisync.masking import redact


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("host=db user=omnisync password=s3cret-pw", "s3cret-pw"),
        ("host=db password='it\\'s a pw'", "it's a pw"),
        ("postgresql://omnisync:s%40cret1@db/crm", "s@cret1"),
        ("postgresql://omnisync@db/crm?password=s%40cret1&sslmode=require", "s@cret1"),
        ("postgresql://omnisync@db/crm?password=s%40cret1&sslmode=require", "s%40cret1"),
    ],
)
def test_the_password_is_gone_however_it_was_written(dsn, secret):
    message = f'connection to "db" failed: password "{secret}" was refused\nfor {dsn}'
    redacted = redact(message, dsn)
    assert secret not in redacted
    assert dsn not in redacted
    assert "\n" not in redacted
    assert "[redacted]" in redacted
