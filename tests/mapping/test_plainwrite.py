"""PlainEncoder: whenever it answers, it answers exactly what the general path sends."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisync.config.model import Consent, Export, FieldMapping
from omnisync.fingerprint import fingerprint_columns
from omnisync.mapping import MappingPlan, normalise_email
from omnisync.omnisend.model import ContactWrite
from omnisync.omnisend.payloads import contact_body, encode_json
from omnisync.plainwrite import PlainEncoder
from tests.staging.configs import full_mapping, make_export

CONSENT = Consent(status_column="consent", changed_at_column="consent_at")

EXPORTS = {
    "full": make_export(mapping=full_mapping()),
    "welcome": make_export(mapping=full_mapping(), send_welcome_message=True),
    "email only": make_export(),
    "consent": make_export(mapping=full_mapping(), consent=CONSENT),
    "country code": make_export(
        mapping=FieldMapping(email="email", country="country", country_code="code")
    ),
    "bad property name": make_export(
        mapping=FieldMapping(email="email", custom_properties={"bad-name": "tier"})
    ),
}

#: Every column an export above reads, but the e-mail (generated on its own).
READ_COLUMNS = sorted(
    {column for export in EXPORTS.values() for column in fingerprint_columns(export)} - {"email"}
)

TEXT = st.one_of(
    st.none(),
    st.sampled_from(["", "  ", " Олена ", "Коваленко", "José 🎉", "Ukraine", " ukraine "]),
    st.sampled_from(["Atlantis", "ukraine", "UA", "Côte d\u2019Ivoire"]),
    st.sampled_from(["Україна", "Deutschland", "null", "x" * 255, "x" * 256, " \t"]),
    st.text(max_size=12),
    st.text(min_size=2040, max_size=2060, alphabet="ab "),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.binary(max_size=6),
    st.sampled_from([b"\xff\xfe", "Київ".encode()]),
)
EMAILS = st.one_of(
    st.sampled_from(
        [
            "  Olena.Kovalenko@Example.COM ",
            "olena@example.com",
            "олена@приклад.укр",
            "no-at-sign.example.com",
            "a@b",
            "a@1.2.3.4",
            "",
            None,
            b"Bytes@Example.com",
            f"{'l' * 65}@example.com",
        ]
    ),
    st.emails().map(str),
    st.text(max_size=20),
)


def general_item(export: Export, row: dict[str, object], *, in_ledger: bool) -> bytes | None:
    """What the general path sends for the row, or None when it sends nothing plainly."""
    outcome = MappingPlan(export).map_row(row, in_ledger=in_ledger)
    if not isinstance(outcome.result, ContactWrite) or outcome.warnings:
        return None
    return encode_json(contact_body(outcome.result))


def plain_item(export: Export, row: dict[str, object], *, in_ledger: bool) -> bytes | None:
    columns = fingerprint_columns(export)
    email = normalise_email(row.get(export.mapping.email))
    if email is None:
        return None
    values = tuple(row.get(column) for column in columns)
    return PlainEncoder(export, columns).encode(values, email, in_ledger=in_ledger)


@settings(max_examples=600, deadline=None)
@given(
    export_name=st.sampled_from(sorted(EXPORTS)),
    in_ledger=st.booleans(),
    email=EMAILS,
    values=st.fixed_dictionaries(dict.fromkeys(READ_COLUMNS, TEXT)),
)
def test_plain_items_are_exactly_what_the_general_path_sends(
    export_name: str, in_ledger: bool, email: object, values: dict[str, Any]
) -> None:
    export = EXPORTS[export_name]
    row = {"email": email, **values}
    plain = plain_item(export, row, in_ledger=in_ledger)
    if plain is not None:
        assert plain == general_item(export, row, in_ledger=in_ledger)


@pytest.mark.parametrize("export_name", ["full", "welcome", "email only"])
def test_ordinary_rows_take_the_plain_path(export_name: str) -> None:
    export = EXPORTS[export_name]
    row: dict[str, object] = {
        "email": " Olena.Kovalenko@Example.COM ",
        "first_name": " Олена ",
        "last_name": "Коваленко",
        "address": None,
        "city": "Київ",
        "state": "",
        "postal_code": "01001",
        "country": "Ukraine",
        "loyalty_tier": "gold",
        "lifetime_value": 1250.0,
    }
    plain = plain_item(export, row, in_ledger=False)
    assert plain is not None
    assert plain == general_item(export, row, in_ledger=False)
    assert b'"sendWelcomeMessage":' in plain and b"tags" not in plain


def test_rows_needing_words_or_consent_take_the_general_path() -> None:
    full = EXPORTS["full"]
    base: dict[str, object] = {"email": "olena@example.com", "first_name": "Олена"}
    assert plain_item(full, {**base, "email": "not an address"}, in_ledger=False) is None
    assert plain_item(full, {**base, "city": "x" * 256}, in_ledger=False) is None
    assert plain_item(full, {**base, "first_name": b"\xff"}, in_ledger=False) is None
    consent = EXPORTS["consent"]
    assert plain_item(consent, base, in_ledger=False) is None
    assert plain_item(consent, base, in_ledger=True) is not None
    assert plain_item(EXPORTS["country code"], base, in_ledger=True) is None
    assert plain_item(EXPORTS["bad property name"], base, in_ledger=True) is None
