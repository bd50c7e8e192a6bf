"""Masking of personal data for logs, errors and ``plan`` output.

Logs never print a full e-mail address (docs/design.md, "Safety rules never
traded for speed"). A masked address keeps enough to recognise it in a
support conversation and no more.
"""

from __future__ import annotations


def mask_email(email: str) -> str:
    """Return ``email`` with most of the local part and domain hidden.

    ``olena.kovalenko@example.com`` becomes ``o***o@e***.com``; a value without
    an ``@`` is masked as a whole. Never returns the input unchanged unless it
    is shorter than two characters.
    """
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
