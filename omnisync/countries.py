"""Country names to ISO 3166-1 alpha-2 codes, backed by pycountry.

:func:`country_code` reads what people typed ("Ukraine", "україна", "UKR",
"Deutschland", "Côte d'Ivoire"): a name, official or common name, alpha-2 or
alpha-3 code, or a name in one of :data:`NAME_LANGUAGES` (pycountry's
iso-codes translations), case- and accent-insensitively; ``None`` when unknown.

pycountry is imported by the first look-up, not with the module: every command that
maps rows imports this one, and only an export that maps a country looks one up.
"""

from __future__ import annotations

import gettext
import unicodedata
from functools import cache, lru_cache

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
    import pycountry

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
    """Every known name and code (as :func:`_key`) -> alpha-2 code. The first claim wins:
    codes, English names and aliases come first, so a translation never shadows them."""
    import pycountry

    countries = list(pycountry.countries)
    english = {
        str(country.alpha_2): [
            str(name)
            for attribute in ("name", "common_name", "official_name")
            if (name := getattr(country, attribute, None))
        ]
        for country in countries
    }
    claims = [(code, code) for code in english]
    claims += [(str(country.alpha_3), str(country.alpha_2)) for country in countries]
    claims += [(name, code) for code, names in english.items() for name in names]
    claims += ALIASES.items()
    for language in NAME_LANGUAGES:
        try:
            translation = gettext.translation(
                "iso3166-1", pycountry.LOCALES_DIR, languages=[language]
            )
        except OSError:
            continue
        claims += [
            (translation.gettext(name), code) for code, names in english.items() for name in names
        ]
    index: dict[str, str] = {}
    for name, code in claims:
        index.setdefault(_key(name), code)
    return index
