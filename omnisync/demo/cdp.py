# ruff: noqa: RUF001  (Cyrillic letters are the point of this data)
"""The demo's sample customer data platform: a SQLite ``customers`` table.

Deterministic (a seeded ``random.Random``), so every demo run tells the same
story: a few thousand profiles across six locales, a sprinkling of invalid
e-mails and duplicates, then a round of changes (edited, new, removed
profiles) for the incremental run. Real-looking, never real: every e-mail uses
a reserved example domain; names and places in several languages, because
omnisync must carry Cyrillic, Polish, Lithuanian, German and Spanish letters
(and the odd emoji) intact.
"""

from __future__ import annotations

import random
import sqlite3
import unicodedata
from collections.abc import Collection
from contextlib import closing
from dataclasses import astuple, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from omnisync.sourcevalues import rfc3339


@dataclass(frozen=True)
class Locale:
    """People of one country: names in their own script, places, and how the CDP writes them."""

    country: str
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    cities: tuple[tuple[str, str, str], ...]  # (city, state, postal code)
    streets: tuple[str, ...]
    weight: int
    #: Other spellings of ``country`` that forms let through.
    spellings: tuple[str, ...] = ()


# fmt: off
LOCALES: tuple[Locale, ...] = (
    Locale(
        country="Ukraine",
        first_names=("Олена", "Андрій", "Оксана", "Тарас", "Ірина", "Дмитро", "Юлія", "Богдан"),
        last_names=(
            "Коваленко", "Шевченко", "Бондаренко", "Мельник", "Ткаченко", "Олійник", "Гнатюк",
        ),
        cities=(("Київ", "", "01001"), ("Львів", "Львівська", "79000"),
                ("Одеса", "Одеська", "65000")),
        streets=("вул. Хрещатик", "вул. Шевченка", "просп. Свободи"),
        weight=22,
    ),
    Locale(
        country="Ukraine",
        first_names=("Olena", "Andrii", "Oksana", "Taras", "Iryna", "Dmytro", "Yuliia", "Bohdan"),
        last_names=("Kovalenko", "Shevchenko", "Bondarenko", "Melnyk", "Tkachenko", "Oliinyk"),
        cities=(("Kyiv", "", "01001"), ("Lviv", "Lviv Oblast", "79000"),
                ("Kharkiv", "Kharkiv Oblast", "61000")),
        streets=("Khreshchatyk St", "Shevchenka St", "Svobody Ave"),
        weight=14,
    ),
    Locale(
        country="Poland",
        first_names=("Zofia", "Łukasz", "Agnieszka", "Paweł", "Małgorzata", "Krzysztof"),
        last_names=("Wiśniewska", "Wójcik", "Kamińska", "Lewandowski", "Woźniak", "Dąbrowski"),
        cities=(("Warszawa", "Mazowieckie", "00-001"), ("Kraków", "Małopolskie", "30-001"),
                ("Łódź", "Łódzkie", "90-001")),
        streets=("ul. Marszałkowska", "ul. Floriańska", "ul. Długa"),
        weight=14,
        spellings=("poland", "Polska"),
    ),
    Locale(
        country="Lithuania",
        first_names=("Jonas", "Rūta", "Mindaugas", "Eglė", "Žygimantas", "Gintarė"),
        last_names=("Kazlauskas", "Petrauskienė", "Stankevičiūtė", "Žukauskaitė", "Butkus"),
        cities=(("Vilnius", "", "01100"), ("Kaunas", "", "44240"), ("Klaipėda", "", "91100")),
        streets=("Gedimino pr.", "Laisvės al.", "Pilies g."),
        weight=8,
        spellings=("Lietuva",),
    ),
    Locale(
        country="Germany",
        first_names=("Jürgen", "Käthe", "Björn", "Lena", "Matthias", "Sören"),
        last_names=("Müller", "Schäfer", "Groß", "Weiß", "Höfer", "Krüger"),
        cities=(("München", "Bayern", "80331"), ("Köln", "Nordrhein-Westfalen", "50667"),
                ("Berlin", "Berlin", "10115")),
        streets=("Königstraße", "Hauptstraße", "Schloßallee"),
        weight=12,
        spellings=("germany", "GERMANY", "Deutschland"),
    ),
    Locale(
        country="Spain",
        first_names=("José", "María", "Íñigo", "Lucía", "Begoña", "Álvaro"),
        last_names=("Martínez", "Núñez", "Peña", "Fernández", "Ibáñez", "Gómez"),
        cities=(("Madrid", "Madrid", "28001"), ("Sevilla", "Andalucía", "41001"),
                ("A Coruña", "Galicia", "15001")),
        streets=("Calle Mayor", "Gran Vía", "Avenida de la Constitución"),
        weight=10,
        spellings=("España",),
    ),
)

#: Reserved example domains (RFC 2606): the demo never names a real mailbox.
DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net", "mail.example.com")

#: A couple of names with an emoji, as some CRMs end up holding.
EMOJI_NAMES: tuple[tuple[str, str], ...] = (("Sunny ☀️", "Kovalenko"), ("Оксана 🌻", "Мельник"))
# fmt: on

#: How people mistype e-mails in a CDP: each is invalid for Omnisend.
INVALID_EMAILS: tuple[str | None, ...] = (
    None,
    "   ",
    "taras.melnyk@",
    "two words@example.com",
    "anna@@example.com",
    "jonas@localhost",
)

TIERS: tuple[tuple[str, int], ...] = (("gold", 15), ("silver", 30), ("bronze", 55))
REFERENCE_TIME = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Customer:
    """One row of ``customers``, the table config.example.yaml's segments query."""

    id: int
    email: str | None
    first_name: str | None
    last_name: str | None
    address: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None
    loyalty_tier: str
    lifetime_value: float
    email_status: str | None
    email_status_changed_at: str | None
    updated_at: str


@dataclass(frozen=True)
class ChangeSummary:
    """What :func:`change_profiles` did to the CDP."""

    changed: int
    added: int
    removed: int
    left_vip: int


def generate_customers(count: int) -> list[Customer]:
    """``count`` profiles; about 1% have an invalid e-mail and 1% repeat an earlier e-mail."""
    randomizer = random.Random(2026)
    customers: list[Customer] = []
    used: set[str] = set()
    for number in range(1, count + 1):
        roll = randomizer.random()
        customer = _person(randomizer, number, used)
        if roll < 0.01 and customers:
            customer = replace(customer, email=randomizer.choice(INVALID_EMAILS))
        elif roll < 0.02 and customers:
            # The same person entered twice, the second time in capitals with stray spaces.
            original = randomizer.choice([other for other in customers[-200:] if other.email])
            customer = replace(
                original, id=number, email=f"  {str(original.email).strip().upper()} "
            )
        customers.append(customer)
    return customers


#: Column types by annotation, as a real CDP's table would have them: people open it to
#: see what the example config's segments query (config.example.yaml, source ``cdp``) reads.
_COLUMN_TYPES = {
    "int": "INTEGER PRIMARY KEY",
    "str": "TEXT NOT NULL",
    "str | None": "TEXT",
    "float": "REAL NOT NULL",
}
CUSTOMERS_DDL = "CREATE TABLE customers (\n{}\n)".format(
    ",\n".join(f"    {field.name} {_COLUMN_TYPES[str(field.type)]}" for field in fields(Customer))
)


def write_cdp(path: Path, customers: list[Customer]) -> None:
    """Create the SQLite CDP at ``path`` (no file there yet) holding ``customers``."""
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(CUSTOMERS_DDL)
        _insert(connection, customers)


def change_profiles(path: Path, *, keep: Collection[int] = ()) -> ChangeSummary:
    """Edit the CDP the way a day of business would, leaving the ids in ``keep`` alone.

    2% of the profiles with a valid-looking e-mail move (new city and address),
    1% new profiles arrive, 1% are deleted, and up to five gold customers drop
    to silver (they leave the VIP segment, so their VIP tag is removed).
    """
    randomizer = random.Random(7)
    stamp = rfc3339(REFERENCE_TIME + timedelta(days=1))
    with closing(sqlite3.connect(path)) as connection, connection:
        everyone = [
            Customer(*row) for row in connection.execute("SELECT * FROM customers ORDER BY id")
        ]
        existing = [c for c in everyone if c.id not in keep and "@" in (c.email or "")]
        size = max(1, int(len(existing) * 0.02))
        picked = randomizer.sample(existing, size + size // 2 + size // 2)
        edited, removed = picked[:size], picked[size : size + size // 2]
        golds = [customer for customer in existing if customer.loyalty_tier == "gold"]
        demoted = [c for c in randomizer.sample(golds, min(len(golds), 5)) if c not in picked]
        by_country = {locale.country: locale for locale in LOCALES}
        for customer in edited:
            locale = by_country.get(customer.country or "", LOCALES[0])
            city, state, postal_code = randomizer.choice(locale.cities)
            address = _address(randomizer, locale)
            connection.execute(
                "UPDATE customers SET city = ?, state = ?, postal_code = ?, address = ?, "
                "updated_at = ? WHERE id = ?",
                (city, state or None, postal_code, address, stamp, customer.id),
            )
        connection.executemany(
            "DELETE FROM customers WHERE id = ?", [(customer.id,) for customer in removed]
        )
        connection.executemany(
            "UPDATE customers SET loyalty_tier = 'silver', updated_at = ? WHERE id = ?",
            [(stamp, customer.id) for customer in demoted],
        )
        used = {customer.email for customer in everyone if customer.email}
        next_id = everyone[-1].id + 1
        added = [
            replace(_person(randomizer, next_id + offset, used), updated_at=stamp)
            for offset in range(size // 2)
        ]
        _insert(connection, added)
    return ChangeSummary(
        changed=len(edited), added=len(added), removed=len(removed), left_vip=len(demoted)
    )


def _insert(connection: sqlite3.Connection, customers: list[Customer]) -> None:
    connection.executemany(
        f"INSERT INTO customers VALUES ({', '.join('?' * len(fields(Customer)))})",
        (astuple(customer) for customer in customers),
    )


def _person(randomizer: random.Random, number: int, used: set[str]) -> Customer:
    locale = randomizer.choices(LOCALES, weights=[locale.weight for locale in LOCALES])[0]
    first_name = randomizer.choice(locale.first_names)
    last_name = randomizer.choice(locale.last_names)
    if randomizer.random() < 0.002:
        first_name, last_name = randomizer.choice(EMOJI_NAMES)
    city, state, postal_code = randomizer.choice(locale.cities)
    tier = randomizer.choices([name for name, _ in TIERS], weights=[w for _, w in TIERS])[0]
    status, changed_at = _consent(randomizer)
    country = locale.country
    if locale.spellings and randomizer.random() < 0.08:
        country = randomizer.choice(locale.spellings)
    return Customer(
        id=number,
        email=_unique_email(randomizer, f"{first_name}.{last_name}", number, used),
        first_name=first_name,
        last_name=last_name,
        address=_address(randomizer, locale) if randomizer.random() < 0.9 else None,
        city=city,
        state=state or None,
        postal_code=postal_code,
        country=country,
        loyalty_tier=tier,
        lifetime_value=round(randomizer.uniform(5, 5000 if tier == "gold" else 900), 2),
        email_status=status,
        email_status_changed_at=changed_at,
        updated_at=rfc3339(REFERENCE_TIME - timedelta(minutes=randomizer.randrange(600_000))),
    )


def _unique_email(randomizer: random.Random, name: str, number: int, used: set[str]) -> str:
    # Accents folded away; a name with no Latin letters (Cyrillic) gets a customer number.
    folded = unicodedata.normalize("NFKD", name.casefold())
    local = "".join(c for c in folded if c.isascii() and (c.isalnum() or c == ".")).strip(".")
    local = local if "." in local else f"customer{number}"
    domain = randomizer.choice(DOMAINS)
    candidate, suffix = f"{local}@{domain}", 1
    while candidate in used:
        suffix += 1
        candidate = f"{local}{suffix}@{domain}"
    used.add(candidate)
    # Some CDPs keep e-mails as people typed them: capitals, stray spaces.
    return f" {candidate.title()} " if randomizer.random() < 0.05 else candidate


def _consent(randomizer: random.Random) -> tuple[str | None, str | None]:
    roll = randomizer.random()
    given = rfc3339(REFERENCE_TIME - timedelta(days=randomizer.randrange(30, 1500)))
    if roll < 0.70:
        return randomizer.choice(("subscribed", "subscribed", "yes", "true")), given
    if roll < 0.85:
        return randomizer.choice(("unsubscribed", "no")), given
    return ("nonSubscribed", given) if roll < 0.97 else (None, None)


def _address(randomizer: random.Random, locale: Locale) -> str:
    return f"{randomizer.choice(locale.streets)} {randomizer.randrange(1, 180)}"
