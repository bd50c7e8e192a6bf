"""Country names to ISO 3166-1 alpha-2 codes, backed by pycountry.

A source's ``country`` column holds whatever people typed: "Ukraine",
"україна", "UKR", "Deutschland", "Côte d'Ivoire". :func:`country_code` finds
the alpha-2 code for a name, an official name, a common name, an alpha-2 or
alpha-3 code, or the name in one of :data:`NAME_LANGUAGES` (pycountry ships
the iso-codes translations), case- and accent-insensitively. Unknown names
give ``None``: the caller then sends the name as ``country`` only.

The index is built on first use, and lookups are cached.
"""

from __future__ import annotations

import gettext
import unicodedata
from collections.abc import Iterator
from functools import cache, lru_cache

import pycountry

#: Languages whose country names are recognised besides English: the
#: languages of omnisync's users' customer bases, kept short because a larger
#: set makes a name in one language more likely to shadow another country.
NAME_LANGUAGES: tuple[str, ...] = ("uk", "pl", "lt", "de", "es", "fr", "it", "pt", "ru")

#: Everyday names that the ISO lists spell otherwise.
ALIASES: dict[str, str] = {
    "russia": "RU",
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "macedonia": "MK",
    "holland": "NL",
    "turkey": "TR",
    "ivory coast": "CI",
    "cape verde": "CV",
    "swaziland": "SZ",
    "burma": "MM",
    "palestine": "PS",
    "vatican": "VA",
    "vatican city": "VA",
    "brunei": "BN",
    "micronesia": "FM",
    "macau": "MO",
    "macao": "MO",
    "the netherlands": "NL",
    "czech republic": "CZ",
}


@lru_cache(maxsize=4096)
def country_code(name: str) -> str | None:
    """The ISO 3166-1 alpha-2 code for ``name``, or ``None`` when unknown."""
    # Cached: a run asks for the same few names once per member.
    key = _key(name)
    return _country_index().get(key) if key else None


@lru_cache(maxsize=1024)
def is_alpha_2(code: str) -> bool:
    """Whether ``code`` (any case, surrounding spaces ignored) is an assigned alpha-2 code.

    Only codes count: "UK", an everyday alias of GB, is not one.
    """
    stripped = code.strip().upper()
    if len(stripped) != 2 or not stripped.isascii():
        return False
    return pycountry.countries.get(alpha_2=stripped) is not None


def _key(text: str) -> str:
    """Case-folded, accent-free, single-spaced: how names are compared."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    without_marks = "".join(char for char in decomposed if not unicodedata.combining(char))
    # Index keys and queried names go through this same function, so dropping
    # marks ("Côte" -> "cote", "Україна" -> "украіна") only widens matching.
    return " ".join(without_marks.split())


@cache
def _country_index() -> dict[str, str]:
    """Every known name and code (as :func:`_key`) -> alpha-2 code; built on first use."""
    index: dict[str, str] = {}

    def add(name: str | None, code: str) -> None:
        if name:
            # The first claim wins: English names and codes are added first,
            # so a translation can never shadow them.
            index.setdefault(_key(name), code)

    countries = list(pycountry.countries)
    for country in countries:
        code = str(country.alpha_2)
        add(code, code)
        add(str(country.alpha_3), code)
    for country in countries:
        for name in _english_names(country):
            add(name, str(country.alpha_2))
    for alias, code in ALIASES.items():
        add(alias, code)
    for language in NAME_LANGUAGES:
        try:
            translation = gettext.translation(
                "iso3166-1", pycountry.LOCALES_DIR, languages=[language]
            )
        except OSError:
            continue
        for country in countries:
            for name in _english_names(country):
                add(translation.gettext(name), str(country.alpha_2))
    return index


def _english_names(country: object) -> Iterator[str]:
    """A pycountry country's name, common name and official name, those it has."""
    for attribute in ("name", "common_name", "official_name"):
        name = getattr(country, attribute, None)
        if name:
            yield str(name)
