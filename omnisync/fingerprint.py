"""Fingerprints: a 64-bit digest of what an export would send for one row. Pure.

A fingerprint covers the *raw source values* of :func:`fingerprint_columns`,
not the mapped payload, so that SQLite staging computes it inside SQLite
(:class:`Fingerprinter` is registered there as a function) and unchanged rows
never become Python objects; file sources call the same function. It digests
:func:`spec_digest` (so a mapping change re-sends everyone once), then the
values rendered by ``marshal`` format 2 (typed and length-prefixed: ``None``
differs from ``""``, ``1`` from ``"1"``). The result fits a SQLite ``INTEGER``.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import struct

from omnisync.config.model import CONTACT_FIELDS, Export

#: Bump when the rendering of values or the meaning of the mapping changes in
#: a way that must make every export re-send its contacts once.
FINGERPRINT_VERSION = 1

#: Format 2 writes no back references (later ones do, depending on reference
#: counts), so its output is a function of the values alone.
_MARSHAL_FORMAT = 2

_SCALAR_NAMES = frozenset({"NoneType", "bool", "int", "float", "str", "bytes"})
_SIGNED_64 = struct.Struct("<q")

#: A value no :class:`Fingerprinter` returns (it maps this one digest to its
#: neighbour), so a ledger entry holding it never matches a staged row: the
#: state store writes it to make the next run re-send a contact
#: (``LedgerStore.mark_for_resend``).
NEVER_A_FINGERPRINT = -(2**63)


def fingerprint_columns(export: Export) -> tuple[str, ...]:
    """The source columns a fingerprint covers, without repeats: the mapping's columns,
    then the consent columns the mapping does not already read."""
    columns: list[str | None] = [*export.mapping.columns()]
    consent = export.consent
    if consent is not None:
        columns += [
            consent.status_column,
            consent.changed_at_column,
            consent.ip_column,
            consent.user_agent_column,
        ]
    return tuple(dict.fromkeys(column for column in columns if column is not None))


def spec_digest(export: Export) -> bytes:
    """A 16-byte digest of everything in ``export`` that shapes a contact's body: fields,
    custom properties, consent, :data:`FINGERPRINT_VERSION`. Not ``send_welcome_message``:
    it matters only when a contact is created, and counting it would re-send everyone."""
    mapping = export.mapping
    consent = export.consent
    spec: dict[str, object] = {
        "version": FINGERPRINT_VERSION,
        "fields": {name: getattr(mapping, name) for name in CONTACT_FIELDS},
        "custom_properties": dict(sorted(mapping.custom_properties.items())),
        "consent": None
        if consent is None
        else {
            "status": consent.status_column,
            "changed_at": consent.changed_at_column,
            "ip": consent.ip_column,
            "user_agent": consent.user_agent_column,
            "source": consent.source,
        },
        "columns": list(fingerprint_columns(export)),
    }
    rendered = json.dumps(spec, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.blake2b(rendered.encode("ascii"), digest_size=16).digest()


class Fingerprinter:
    """``Fingerprinter(export)(*values)``: the fingerprint of the values of
    ``fingerprint_columns(export)`` (each ``None``, ``bool``, ``int``, ``float``, ``str`` or
    ``bytes``; anything else is a :class:`TypeError`) as a signed 64-bit integer. Suits
    ``create_function(name, -1, ...)``. Thread-safe."""

    __slots__ = ("_prefix",)

    def __init__(self, export: Export) -> None:
        # Hashing the spec once and copying the state per row is measurably
        # cheaper than re-feeding the spec for each of a million rows.
        self._prefix = hashlib.blake2b(spec_digest(export), digest_size=8)

    def __call__(self, *values: object) -> int:
        # The hot path of staging (once per row, inside SQLite): no checks
        # beyond what marshal does itself.
        state = self._prefix.copy()
        try:
            state.update(marshal.dumps(values, _MARSHAL_FORMAT))  # type: ignore[arg-type]
        except ValueError:
            odd = sorted({type(value).__name__ for value in values} - _SCALAR_NAMES)
            raise TypeError(f"cannot fingerprint values of type {', '.join(odd)}") from None
        return fingerprint_of_digest(state.digest())


def fingerprint_of_digest(digest: bytes) -> int:
    """The fingerprint an 8-byte digest stands for: its signed 64-bit value,
    except that :data:`NEVER_A_FINGERPRINT` becomes its neighbour, so a ledger
    entry marked for re-sending never matches a staged row."""
    signed: int = _SIGNED_64.unpack(digest)[0]
    return signed if signed != NEVER_A_FINGERPRINT else NEVER_A_FINGERPRINT + 1
