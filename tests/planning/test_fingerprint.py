"""Fingerprints: what changes them and what does not."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from omnisync.config.model import Consent, FieldMapping
from omnisync.fingerprint import (
    NEVER_A_FINGERPRINT,
    Fingerprinter,
    fingerprint_columns,
    fingerprint_of_digest,
)
from tests.staging.configs import consent_export, full_mapping, make_export


def test_columns_are_the_mapping_columns_then_consent_columns_without_repeats() -> None:
    export = make_export(
        mapping=FieldMapping(
            email="email", first_name="name", custom_properties={"z": "name", "a": "tier"}
        ),
        consent=Consent(status_column="status", changed_at_column="at", ip_column="tier"),
    )
    assert fingerprint_columns(export) == ("email", "name", "tier", "status", "at")


def test_a_fingerprint_is_a_signed_64_bit_integer_and_deterministic() -> None:
    fingerprinter = Fingerprinter(make_export())
    value = fingerprinter("olena@example.com", "Олена", 1, 2.5, None, b"\x00")
    assert -(2**63) <= value < 2**63
    assert value == Fingerprinter(make_export())(
        "olena@example.com", "Олена", 1, 2.5, None, b"\x00"
    )


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ((None,), ("",)),
        (("1",), (1,)),
        ((1,), (1.0,)),
        ((1,), (True,)),
        (("a", "bc"), ("ab", "c")),
        (("a", None), (None, "a")),
        (("e\u0301",), ("\u00e9",)),
        (("x",), ("x", None)),
    ],
)
def test_values_that_differ_in_type_split_or_form_have_different_fingerprints(
    left: tuple[object, ...], right: tuple[object, ...]
) -> None:
    fingerprinter = Fingerprinter(make_export())
    assert fingerprinter(*left) != fingerprinter(*right)


def test_the_spec_changes_the_fingerprint_of_the_same_values() -> None:
    base = make_export(mapping=full_mapping())
    values = ("a@example.com",) * len(fingerprint_columns(base))
    swapped = replace(
        base, mapping=replace(base.mapping, first_name="last_name", last_name="first_name")
    )
    renamed_property = replace(
        base,
        mapping=replace(
            base.mapping,
            custom_properties={"tier": "loyalty_tier", "lifetime_value": "lifetime_value"},
        ),
    )
    variants = [base, swapped, renamed_property, consent_export()]
    fingerprints = {Fingerprinter(export)(*values) for export in variants}
    assert len(fingerprints) == len(variants)


def test_tag_schedule_limits_and_welcome_message_do_not_change_fingerprints() -> None:
    base = make_export(mapping=full_mapping())
    values = ("a@example.com",) * len(fingerprint_columns(base))
    for other in (
        replace(base, tag="vip-2026"),
        replace(base, on_leave="keep"),
        replace(base, max_profiles=10),
        replace(base, send_welcome_message=True),
        replace(base, name="another-export"),
    ):
        assert Fingerprinter(other)(*values) == Fingerprinter(base)(*values)


def test_values_of_other_types_are_refused() -> None:
    fingerprinter = Fingerprinter(make_export())
    with pytest.raises(TypeError, match="cannot fingerprint values of type object"):
        fingerprinter("a", object())


def test_no_row_ever_fingerprints_as_the_resend_mark() -> None:
    # The one digest that would read as NEVER_A_FINGERPRINT becomes its neighbour,
    # so a ledger entry marked for re-sending can never match a staged row.
    assert fingerprint_of_digest(struct.pack("<q", NEVER_A_FINGERPRINT)) == NEVER_A_FINGERPRINT + 1
    assert fingerprint_of_digest(struct.pack("<q", 42)) == 42
    assert fingerprint_of_digest(struct.pack("<q", -1)) == -1
