"""Country names and codes to ISO 3166-1 alpha-2, through pycountry."""

from __future__ import annotations

import pytest

from omnisync.countries import country_code, is_alpha_2


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Ukraine", "UA"),
        ("UA", "UA"),
        ("ukr", "UA"),
        ("Україна", "UA"),
        ("Німеччина", "DE"),
        ("Vokietija", "DE"),
        ("Niemcy", "DE"),
        ("Alemania", "DE"),
        ("Czechia", "CZ"),
        ("Czech Republic", "CZ"),
        ("Russian Federation", "RU"),
        ("Russia", "RU"),
        ("Taiwan", "TW"),
        ("Viet Nam", "VN"),
        ("Vietnam", "VN"),
        ("Great Britain", "GB"),
    ],
)
def test_known_names_codes_and_translations(name: str, code: str) -> None:
    assert country_code(name) == code


@pytest.mark.parametrize("name", ["Narnia", "", "   ", "U", "EU", "Europe", "804"])
def test_unknown_names_give_none(name: str) -> None:
    assert country_code(name) is None


def test_alpha_2_check_accepts_only_assigned_two_letter_codes() -> None:
    assert is_alpha_2("ua")
    assert is_alpha_2(" GB ")
    assert not is_alpha_2("UKR")
    assert not is_alpha_2("XX")
    assert not is_alpha_2("UK")  # an alias of GB, not a code
    assert not is_alpha_2("Уа")  # noqa: RUF001 - Cyrillic look-alikes on purpose
