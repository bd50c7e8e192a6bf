"""Masking of e-mail addresses and secrets for logs, errors and ``plan`` output, and
control characters made visible in text from a config. Pure."""

from __future__ import annotations

import re
from urllib.parse import unquote


def mask_email(email: str) -> str:
    """``olena.kovalenko@example.com`` as ``o***o@e***.com``: enough to recognise it in a
    support conversation, no more. A value without an ``@`` is masked as a whole."""
    local, at, domain = email.partition("@")
    if not at:
        return _mask_part(email)
    name, dot, tld = domain.rpartition(".")
    masked_domain = f"{_mask_part(name)}.{tld}" if dot else _mask_part(domain)
    return f"{_mask_part(local)}@{masked_domain}"


def _mask_part(part: str) -> str:
    if len(part) <= 1:
        return "*"
    if len(part) <= 3:
        return part[0] + "***"
    return f"{part[0]}***{part[-1]}"


#: Characters that end an address: whitespace and quoting; also ``= / & ? #``, which
#: surround one in a URL's query (``?email=...&``).
_STOP = r"\s@\"'<>()\[\]{},;:=/\\&?#"
#: Looks like an address: something@something.tld, also percent-encoded (``%40``), as in a
#: URL. The local part may end with any printable character but ``@`` (``neil'@…``,
#: ``a/@…``: a stop character right before the ``@`` must not hide the address).
#: The local part starts only where a run of address characters starts (the lookbehind):
#: tried from every character, a long run without a dot took quadratic time.
_EMAIL = re.compile(
    rf"(?:(?<![^{_STOP}])[^{_STOP}]+[^\s@\"<>()\[\],;:\\]?|[^\s@])"
    rf"(?:@|%40)[^{_STOP}]+\.[^{_STOP}]+",
    re.IGNORECASE,
)


def mask_emails_in(text: str) -> str:
    """``text`` with everything that looks like an e-mail address masked (:func:`mask_email`)."""
    if "@" not in text and "%40" not in text:
        return text
    # ``olena%40example.com`` is decoded first, so that it masks like any address.
    return _EMAIL.sub(lambda match: mask_email(match.group(0).replace("%40", "@", 1)), text)


_PASSWORD_PAIR = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URI_PASSWORD = re.compile(r"(://[^:/?#@\s]*:)([^@\s]*)@")


def redact(message: str, dsn: str) -> str:
    """``message`` on one line, without the DSN or any password from it.

    Passwords are removed wherever they stand after ``password=`` or in a
    URI's ``user:password@``; the DSN's own password (4 characters or more:
    shorter ones would blot out ordinary words), as written and as libpq
    decodes it (quoted, or in a URI), and the DSN itself anywhere.
    """
    text = " ".join(message.split())
    secrets = {dsn}
    for match in _PASSWORD_PAIR.finditer(dsn):
        value = match.group(2).strip("'")
        in_query = value.split("&", 1)[0]  # a URI's ?password=…&sslmode=…
        unescaped = re.sub(r"\\(.)", r"\1", value)  # libpq's 'it\'s' is it's
        secrets |= {value, unescaped, in_query, unquote(in_query)}
    for match in _URI_PASSWORD.finditer(dsn):
        password = match.group(2)
        secrets |= {password, unquote(password)}  # libpq quotes it decoded
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _PASSWORD_PAIR.sub(r"\1[redacted]", text)
    return _URI_PASSWORD.sub(r"\1[redacted]@", text)


#: Control characters (C0, DEL, C1: ``\n``, ``\r``, NEL...) and the Unicode line and
#: paragraph separators, each as a visible escape.
_ESCAPES = {
    code: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(chr(code), f"\\u{code:04x}")
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}


def one_line(text: str) -> str:
    """``text`` on one line: control characters escaped (``\\n``, ``\\u001b``), so text
    from a config (an export name) can neither start a line of its own nor drive a terminal."""
    return text.translate(_ESCAPES)
