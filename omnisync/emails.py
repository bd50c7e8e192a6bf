"""E-mail addresses as omnisync keys and sends them: normalised and validated.

Pure. :func:`normalise_email` gives the key a row is staged, diffed, recorded
and sent under; :func:`email_problem` says why an address cannot be sent.
"""

from __future__ import annotations

import re
import unicodedata

#: RFC 5321 limits, in octets of the UTF-8 form (RFC 6531 for non-ASCII).
MAX_EMAIL_LOCAL_OCTETS = 64
MAX_EMAIL_OCTETS = 254

# Characters RFC 5322 allows unquoted in a local part ("atext" and the dot).
_LOCAL_ASCII = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-."
)
_DOMAIN_ASCII = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"})
_REPLACEMENT_CHARACTER = "\ufffd"
_ATOM = r"[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")


def normalise_email(value: object) -> str | None:
    """The e-mail key of a raw value: trimmed and lower-cased; ``None`` when empty.

    The staging SQL registers this very function, so the key a row is staged,
    diffed and recorded under is always the e-mail that is sent. Bytes that are
    not UTF-8 still get a key (with U+FFFD where they fail), so that the row is
    counted; :func:`email_problem` refuses it.
    """
    if value is None:
        return None
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    normalised = text.strip().lower()
    return normalised or None


def email_problem(email: str) -> str | None:
    """Why ``email`` (already normalised) is not a usable address, or ``None``.

    A practical RFC 5321/5322 check: exactly one ``@``; an unquoted local part
    of permitted characters without misplaced dots; a domain of at least two
    labels of letters, digits and hyphens (any non-ASCII letter is allowed, for
    internationalised domains and local parts); no spaces or control
    characters; no U+FFFD, the mark of bytes that were not UTF-8; at most 64
    octets before the ``@`` and 254 in all.
    """
    # Nearly every address is plain ASCII and valid: one regular expression
    # accepts those (a strict subset of what the detailed check accepts);
    # everything else gets the detailed check, which also says why.
    if (
        len(email) <= MAX_EMAIL_OCTETS
        and email.isascii()
        and _PLAIN_EMAIL.fullmatch(email) is not None
        and email.index("@") <= MAX_EMAIL_LOCAL_OCTETS
        and not email.rpartition(".")[2].isdigit()
    ):
        return None
    return _email_problem_in_detail(email)


def _email_problem_in_detail(email: str) -> str | None:
    # U+FFFD stands for bytes that were not UTF-8 (normalise_email's, or a decoder's
    # upstream): the address is lost, and sending it would create a junk contact.
    if _REPLACEMENT_CHARACTER in email:
        return "e-mail is binary data, not UTF-8 text"
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in email):
        return "e-mail contains spaces or control characters"
    if email.count("@") != 1:
        return "e-mail must contain exactly one @"
    local, _, domain = email.partition("@")
    if not local:
        return "e-mail has nothing before the @"
    if not domain:
        return "e-mail has nothing after the @"
    if len(local.encode("utf-8")) > MAX_EMAIL_LOCAL_OCTETS:
        return "e-mail part before the @ is longer than 64 octets"
    if len(email.encode("utf-8")) > MAX_EMAIL_OCTETS:
        return "e-mail is longer than 254 octets"
    if any(char.isascii() and char not in _LOCAL_ASCII for char in local):
        return "e-mail has characters not allowed before the @"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "e-mail has a misplaced dot before the @"
    if "." not in domain:
        return "e-mail domain has no dot"
    labels = domain.split(".")
    for label in labels:
        if not label or label.startswith("-") or label.endswith("-"):
            return "e-mail domain is malformed"
        if any(char.isascii() and char not in _DOMAIN_ASCII for char in label):
            return "e-mail domain has characters that are not allowed"
        if len(label.encode("utf-8")) > 63:
            return "e-mail domain is malformed"
    if labels[-1].isdigit():
        return "e-mail domain is malformed"
    return None
