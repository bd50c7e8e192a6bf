"""MappingPlan.map_row: each field, invalid reasons, Unicode, countries, custom properties."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from omnisync.config.model import FieldMapping
from omnisync.contact import ContactWrite
from omnisync.mapping import InvalidRow, MappingPlan
from omnisync.sourcevalues import cleaned_text
from tests.staging.configs import full_mapping, make_export

EXPORT = make_export(mapping=full_mapping())


def a_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "email": "  Olena.Kovalenko@Example.COM ",
        "first_name": " Олена ",
        "last_name": "Коваленко",
        "address": "вул. Хрещатик, 1",
        "city": "Київ",
        "state": "Київська область",
        "postal_code": "01001",
        "country": "Ukraine",
        "loyalty_tier": "gold",
        "lifetime_value": 1250.5,
    }
    row.update(overrides)
    return row


def mapped(row: dict[str, object], **kwargs: object) -> ContactWrite:
    export = kwargs.pop("export", EXPORT)
    in_ledger = bool(kwargs.pop("in_ledger", False))
    result = MappingPlan(export).map_row(row, in_ledger=in_ledger).result  # type: ignore[arg-type]
    assert isinstance(result, ContactWrite), result
    return result


def refused(row: dict[str, object], **kwargs: object) -> InvalidRow:
    export = kwargs.pop("export", EXPORT)
    result = MappingPlan(export).map_row(row, in_ledger=False).result  # type: ignore[arg-type]
    assert isinstance(result, InvalidRow), result
    return result


def test_every_field_is_mapped_to_its_omnisend_name_with_unicode_intact() -> None:
    write = mapped(a_row())
    assert write.email == "olena.kovalenko@example.com"
    assert write.fields == {
        "firstName": "Олена",
        "lastName": "Коваленко",
        "address": "вул. Хрещатик, 1",
        "city": "Київ",
        "state": "Київська область",
        "postalCode": "01001",
        "country": "Ukraine",
        "countryCode": "UA",
    }
    assert write.custom_properties == {"loyalty_tier": "gold", "lifetime_value": "1250.5"}
    assert write.consent is None
    assert write.send_welcome_message is False


def test_accents_and_emoji_pass_through_untouched() -> None:
    decomposed = "Zoe\u0308"  # "Zoë" as e + combining diaeresis: not recomposed
    write = mapped(a_row(first_name=decomposed, last_name="Ślusarczyk 🎉", city="Šiauliai"))
    assert write.fields["firstName"] == decomposed
    assert write.fields["lastName"] == "Ślusarczyk 🎉"
    assert write.fields["city"] == "Šiauliai"


def test_empty_and_blank_values_are_absent_not_empty_strings() -> None:
    write = mapped(a_row(first_name="", last_name="   ", city=None, loyalty_tier=" "))
    assert "firstName" not in write.fields
    assert "lastName" not in write.fields
    assert "city" not in write.fields
    assert "loyalty_tier" not in write.custom_properties


def test_only_mapped_fields_are_sent() -> None:
    export = make_export(mapping=FieldMapping(email="mail", first_name="given"))
    write = mapped({"mail": "a@example.com", "given": "Ana", "city": "Vilnius"}, export=export)
    assert write.fields == {"firstName": "Ana"}
    assert write.custom_properties == {}


@pytest.mark.parametrize(
    ("country", "code"),
    [
        ("Ukraine", "UA"),
        ("україна", "UA"),
        ("UKRAINE", "UA"),
        ("Polska", "PL"),
        ("Lietuva", "LT"),
        ("Deutschland", "DE"),
        ("United Kingdom of Great Britain and Northern Ireland", "GB"),
        ("UK", "GB"),
        ("South Korea", "KR"),
        ("Cote d'Ivoire", "CI"),
        ("Côte d'Ivoire", "CI"),
        ("esp", "ES"),
        ("lt", "LT"),
        ("  united   states  ", "US"),
    ],
)
def test_country_names_become_country_codes(country: str, code: str) -> None:
    write = mapped(a_row(country=country))
    assert write.fields["countryCode"] == code
    assert write.fields["country"] == country.strip()


def test_an_unknown_country_stays_a_name_only() -> None:
    write = mapped(a_row(country="Narnia"))
    assert write.fields["country"] == "Narnia"
    assert "countryCode" not in write.fields


def test_control_characters_in_a_country_code_are_removed_with_a_warning() -> None:
    export = make_export(mapping=FieldMapping(email="email", country_code="cc"))
    outcome = MappingPlan(export).map_row(
        {"email": "a@example.com", "cc": "U\x07A"}, in_ledger=False
    )
    assert isinstance(outcome.result, ContactWrite)
    assert outcome.result.fields == {"countryCode": "UA"}
    assert outcome.warnings == ("country_code: control characters removed",)


def test_a_country_code_column_wins_and_must_be_alpha_2() -> None:
    export = make_export(mapping=FieldMapping(email="email", country="country", country_code="cc"))
    write = mapped({"email": "a@example.com", "country": "Ukraine", "cc": "pl"}, export=export)
    assert write.fields == {"country": "Ukraine", "countryCode": "PL"}
    fallback = mapped({"email": "a@example.com", "country": "Ukraine", "cc": ""}, export=export)
    assert fallback.fields["countryCode"] == "UA"
    for bad in ("POL", "XX", "U1"):
        invalid = refused({"email": "a@example.com", "cc": bad}, export=export)
        assert invalid.reasons == ("country_code is not an ISO 3166-1 alpha-2 code",)


def test_custom_property_values_are_stringified() -> None:
    export = make_export(
        mapping=FieldMapping(
            email="email",
            custom_properties={"count": "n", "ratio": "r", "whole": "w", "flag": "f", "big": "b"},
        )
    )
    write = mapped(
        {"email": "a@example.com", "n": 42, "r": 0.125, "w": 120.0, "f": True, "b": 1e20},
        export=export,
    )
    assert write.custom_properties == {
        "count": "42",
        "ratio": "0.125",
        "whole": "120",
        "flag": "true",
        "big": "1e+20",
    }


def test_over_long_values_make_the_row_invalid_with_every_reason_at_once() -> None:
    invalid = refused(
        a_row(first_name="Й" * 129, city="c" * 300, loyalty_tier="t" * 2049, email="bad@@x.com")
    )
    assert invalid.email_masked.startswith("b***@")
    assert "bad" not in invalid.email_masked
    assert invalid.reasons == (
        "e-mail must contain exactly one @",
        "first_name is longer than 128 characters",
        "city is longer than 128 characters",
        "custom property 'loyalty_tier' is longer than 2048 characters",
    )


def test_values_at_the_limits_are_accepted() -> None:
    write = mapped(a_row(first_name="Й" * 128, loyalty_tier="t" * 2048))
    assert len(write.fields["firstName"]) == 128
    assert len(write.custom_properties["loyalty_tier"]) == 2048


def test_each_field_is_held_to_the_limit_the_emulator_holds_omnisend_to() -> None:
    """A row Omnisend would refuse is invalid instead: more than half of a batch refused
    stops it, and its other contacts were never delivered, run after run."""
    from omnisync.emulator.contacts import STRING_FIELDS
    from omnisync.mapping import MAX_FIELD_LENGTHS

    assert MAX_FIELD_LENGTHS == STRING_FIELDS


def test_a_missing_email_is_invalid_without_any_address_to_show() -> None:
    for empty in (None, "", "   "):
        assert refused(a_row(email=empty)) == InvalidRow("", ("missing e-mail",))
    assert refused({"first_name": "Ana"}) == InvalidRow("", ("missing e-mail",))


def test_a_malformed_email_is_reported_masked() -> None:
    invalid = refused(a_row(email="olena.kovalenko.example.com"))
    assert invalid.reasons == ("e-mail must contain exactly one @",)
    assert "olena" not in invalid.email_masked
    assert invalid.email_masked.startswith("o***")


def test_custom_property_names_are_checked_against_omnisends_rule() -> None:
    export = make_export(
        mapping=FieldMapping(email="email", custom_properties={"loyalty tier": "t", "ok_1": "t"})
    )
    invalid = refused({"email": "a@example.com", "t": "gold"}, export=export)
    assert invalid.reasons == (
        "custom property name 'loyalty tier' is not accepted by Omnisend "
        "(1-128 letters, digits or _)",
    )


def test_binary_values_that_are_not_utf8_are_invalid_but_utf8_bytes_are_text() -> None:
    assert mapped(a_row(city="Kraków".encode())).fields["city"] == "Kraków"
    assert refused(a_row(city=b"\xff\xfe")).reasons == ("city is binary data, not UTF-8 text",)


def test_an_email_stored_as_a_blob_that_is_not_utf8_is_an_invalid_row(tmp_path: Path) -> None:
    database = tmp_path / "cdp.sqlite"
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("CREATE TABLE customers (email TEXT, first_name TEXT)")
        connection.execute(
            "INSERT INTO customers VALUES (?, 'Ann'), (?, 'Ann')",
            (b"Ann\xe9@example.com", b"Ann@example.com"),
        )
        connection.commit()
        rows = connection.execute("SELECT email, first_name FROM customers").fetchall()
    assert [type(email) for email, _ in rows] == [bytes, bytes]  # real BLOBs
    export = make_export(mapping=FieldMapping(email="email", first_name="first_name"))
    binary, utf8 = (
        MappingPlan(export).map_row({"email": email, "first_name": name}, in_ledger=False)
        for email, name in rows
    )
    assert isinstance(binary.result, InvalidRow), binary.result
    assert binary.result.reasons == ("e-mail is binary data, not UTF-8 text",)
    assert "example.com" not in binary.result.email_masked
    assert isinstance(utf8.result, ContactWrite)
    assert utf8.result.email == "ann@example.com"


def test_welcome_message_follows_the_export() -> None:
    assert mapped(a_row()).send_welcome_message is False
    opted_in = make_export(mapping=full_mapping(), send_welcome_message=True)
    assert mapped(a_row(), export=opted_in).send_welcome_message is True


def test_map_row_has_no_warnings_for_a_clean_row() -> None:
    outcome = MappingPlan(EXPORT).map_row(a_row(), in_ledger=False)
    assert isinstance(outcome.result, ContactWrite)
    assert outcome.warnings == ()


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, None), ("  x ", "x"), ("", None), (7, "7"), (-0.5, "-0.5"), (False, "false")],
)
def test_text_value(value: object, text: str | None) -> None:
    assert cleaned_text(value)[0] == text
