"""Fingerprints: a 64-bit digest of what an export would send for one row.

Pure. A fingerprint is computed from the *raw source values* of the columns an
export reads, not from the mapped payload, so that a SQLite source can
fingerprint every row inside SQLite (this module's :class:`Fingerprinter` is
registered there as a user-defined function) and unchanged rows never become
Python objects. The same callable serves the Python path of file sources, so
for a given source kind the fingerprint of a row does not depend on which path
computed it.

The digest covers, in order:

1. a digest of the export's mapping *spec* (:func:`spec_digest`): which column
   feeds which contact field, the custom properties, the consent columns and
   :data:`FINGERPRINT_VERSION`; changing any of these changes every
   fingerprint, so the next run re-sends everyone with the new payload;
2. the values of :func:`fingerprint_columns` in that order, rendered
   canonically by ``marshal`` format 2 (typed, length-prefixed, no back
   references, so ``None`` differs from ``""``, ``1`` from ``"1"`` and the
   output depends on the values alone).

The result is a signed 64-bit integer, which fits a SQLite ``INTEGER``.
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

#: ``marshal`` format 2 writes no back references (format 3 and later do,
#: depending on reference counts), so its output is a function of the values.
_MARSHAL_FORMAT = 2

#: Value types a fingerprint accepts: what SQLite, CSV and JSONL sources yield.
FingerprintValue = None | bool | int | float | str | bytes
_SCALAR_NAMES = frozenset({"NoneType", "bool", "int", "float", "str", "bytes"})
_SIGNED_64 = struct.Struct("<q")

#: A value no :class:`Fingerprinter` returns (it maps this one digest to its
#: neighbour), so a ledger entry holding it never matches a staged row: the
#: state store writes it to make the next run re-send a contact
#: (``LedgerStore.mark_for_resend``).
NEVER_A_FINGERPRINT = -(2**63)


def fingerprint_columns(export: Export) -> tuple[str, ...]:
    """The source columns a fingerprint covers, in order, without repeats.

    ``export.mapping.columns()`` followed by the consent columns (status,
    changed-at, IP, user agent) that the mapping does not already read.
    """
    ordered = list(export.mapping.columns())
    consent = export.consent
    if consent is not None:
        for column in (
            consent.status_column,
            consent.changed_at_column,
            consent.ip_column,
            consent.user_agent_column,
        ):
            if column is not None and column not in ordered:
                ordered.append(column)
    return tuple(ordered)


def spec_digest(export: Export) -> bytes:
    """A 16-byte digest of everything in ``export`` that shapes the payload.

    Covers the field → column assignments, custom properties, consent columns
    and source label, and :data:`FINGERPRINT_VERSION`. Deliberately excludes
    the tag, ``on_leave``, ``max_profiles`` and the schedule (they do not
    change a contact's body) and ``send_welcome_message`` (it only matters
    when a contact is created; counting it would re-send everyone).
    """
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
    """Computes fingerprints for one export's spec.

    ``fingerprinter(*values)`` takes the values of :func:`fingerprint_columns`
    in order (each ``None``, ``bool``, ``int``, ``float``, ``str`` or ``bytes``,
    what sources yield; a value marshal cannot write is a :class:`TypeError`)
    and returns a signed 64-bit integer. Its signature suits
    ``sqlite3.Connection.create_function(name, -1, fingerprinter)``.
    Thread-safe (no mutable state beyond a prepared hash prefix).
    """

    __slots__ = ("_prefix",)

    def __init__(self, spec: bytes) -> None:
        # Hashing the spec once and copying the state per row is measurably
        # cheaper than re-feeding the spec for each of a million rows.
        self._prefix = hashlib.blake2b(spec, digest_size=8)

    @classmethod
    def for_export(cls, export: Export) -> Fingerprinter:
        return cls(spec_digest(export))

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
