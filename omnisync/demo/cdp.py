"""The demo's sample customer data platform: a SQLite ``customers`` table.

Deterministic (a seeded ``random.Random``), so every demo run tells the same
story: a few thousand profiles across eight locales, a sprinkling of invalid
e-mails and duplicates, then a round of changes (edited, new, removed
profiles) for the incremental run.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Collection
from dataclasses import astuple, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from omnisync.demo.people import DOMAINS, EMOJI_NAMES, LOCALES, Locale, ascii_local_part

#: The table the example config's segments query (config.example.yaml, source ``cdp``).
CUSTOMERS_DDL = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    email TEXT,
    first_name TEXT,
    last_name TEXT,
    address TEXT,
    city TEXT,
    state TEXT,
    postal_code TEXT,
    country TEXT,
    loyalty_tier TEXT NOT NULL,
    lifetime_value REAL NOT NULL,
    email_status TEXT,
    email_status_changed_at TEXT,
    updated_at TEXT NOT NULL
)
"""

#: How people mistype e-mails in a CDP: each is invalid for Omnisend.
INVALID_EMAILS: tuple[str | None, ...] = (
    None,
    "",
    "   ",
    "not-an-email",
    "taras.melnyk@",
    "@example.com",
    "two words@example.com",
    "anna@@example.com",
    "jonas@localhost",
    "zofia.wisniewska@example,com",
)

#: How country names arrive from forms: mostly clean, some in other spellings.
COUNTRY_VARIANTS: dict[str, tuple[str, ...]] = {
    "Germany": ("germany", "GERMANY", "Deutschland"),
    "Poland": ("poland", "Polska"),
    "United Kingdom": ("UK", "Great Britain"),
    "United States": ("USA", "United States of America"),
    "Spain": ("España",),
    "Lithuania": ("Lietuva",),
}

TIERS: tuple[tuple[str, int], ...] = (("gold", 15), ("silver", 30), ("bronze", 55))
REFERENCE_TIME = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Customer:
    """One row of ``customers``."""

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


def generate_customers(count: int, *, seed: int = 2026) -> list[Customer]:
    """``count`` profiles; about 1% have an invalid e-mail and 1% repeat an earlier e-mail."""
    randomizer = random.Random(seed)
    customers: list[Customer] = []
    used: set[str] = set()
    for number in range(1, count + 1):
        roll = randomizer.random()
        if roll < 0.01 and customers:
            customers.append(_invalid(randomizer, number))
        elif roll < 0.02 and customers:
            customers.append(_duplicate(randomizer, number, customers))
        else:
            customers.append(_person(randomizer, number, used))
    return customers


def write_cdp(path: Path, customers: list[Customer]) -> None:
    """Create the SQLite CDP at ``path`` (replacing any file there) holding ``customers``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    try:
        connection.execute(CUSTOMERS_DDL)
        _insert(connection, customers)
        connection.commit()
    finally:
        connection.close()


def change_profiles(
    path: Path, *, fraction: float = 0.02, seed: int = 7, keep: Collection[int] = ()
) -> ChangeSummary:
    """Edit the CDP the way a day of business would: some edits, sign-ups, deletions.

    ``fraction`` of the valid profiles change a mapped field (city, last
    name, postal code), ``fraction / 2`` new profiles arrive, ``fraction / 2``
    are deleted, and a few gold customers drop to silver (they leave the VIP
    segment, so their VIP tag is removed). Customers whose id is in ``keep``
    are left as they are.
    """
    randomizer = random.Random(seed)
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT * FROM customers WHERE email LIKE '%_@_%._%' ORDER BY id"
        ).fetchall()
        everyone = [Customer(*row) for row in rows]
        existing = [customer for customer in everyone if customer.id not in keep]
        stamp = _stamp(REFERENCE_TIME + timedelta(days=1))
        size = max(1, int(len(existing) * fraction))
        picked = randomizer.sample(existing, size + size // 2 + size // 2)
        edited, removed = picked[:size], picked[size : size + size // 2]
        golds = [customer for customer in existing if customer.loyalty_tier == "gold"]
        demoted = [c for c in randomizer.sample(golds, min(len(golds), 5)) if c not in picked]
        for customer in edited:
            locale = _locale_of(customer)
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
        next_id = int(connection.execute("SELECT max(id) FROM customers").fetchone()[0]) + 1
        used = {customer.email for customer in everyone if customer.email}
        added = [
            replace(_person(randomizer, next_id + offset, used), updated_at=stamp)
            for offset in range(size // 2)
        ]
        _insert(connection, added)
        connection.commit()
    finally:
        connection.close()
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
    email = _unique_email(randomizer, first_name, last_name, used)
    city, state, postal_code = randomizer.choice(locale.cities)
    tier = randomizer.choices([name for name, _ in TIERS], weights=[w for _, w in TIERS])[0]
    status, changed_at = _consent(randomizer)
    return Customer(
        id=number,
        email=email,
        first_name=first_name,
        last_name=last_name,
        address=_address(randomizer, locale) if randomizer.random() < 0.9 else None,
        city=city,
        state=state or None,
        postal_code=postal_code,
        country=_country(randomizer, locale.country),
        loyalty_tier=tier,
        lifetime_value=round(randomizer.uniform(5, 5000 if tier == "gold" else 900), 2),
        email_status=status,
        email_status_changed_at=changed_at,
        updated_at=_stamp(REFERENCE_TIME - timedelta(minutes=randomizer.randrange(600_000))),
    )


def _unique_email(
    randomizer: random.Random, first_name: str, last_name: str, used: set[str]
) -> str:
    first, last = ascii_local_part(first_name), ascii_local_part(last_name)
    domain = randomizer.choice(DOMAINS)
    candidate = f"{first}.{last}@{domain}"
    suffix = 1
    while candidate in used:
        suffix += 1
        candidate = f"{first}.{last}{suffix}@{domain}"
    used.add(candidate)
    # Some CDPs keep e-mails as people typed them: capitals, stray spaces.
    if randomizer.random() < 0.05:
        return f" {first.capitalize()}.{last.capitalize()}{'' if suffix == 1 else suffix}@{domain} "
    return candidate


def _invalid(randomizer: random.Random, number: int) -> Customer:
    locale = randomizer.choice(LOCALES)
    return Customer(
        id=number,
        email=randomizer.choice(INVALID_EMAILS),
        first_name=randomizer.choice(locale.first_names),
        last_name=randomizer.choice(locale.last_names),
        address=None,
        city=None,
        state=None,
        postal_code=None,
        country=locale.country,
        loyalty_tier=randomizer.choice(("gold", "silver")),
        lifetime_value=10.0,
        email_status="subscribed",
        email_status_changed_at=None,
        updated_at=_stamp(REFERENCE_TIME),
    )


def _duplicate(randomizer: random.Random, number: int, customers: list[Customer]) -> Customer:
    original = randomizer.choice([customer for customer in customers[-200:] if customer.email])
    assert original.email is not None
    email = original.email.strip()
    # The same person entered twice, the second time in capitals with stray spaces.
    return replace(original, id=number, email=f"  {email.upper()} ")


def _consent(randomizer: random.Random) -> tuple[str | None, str | None]:
    roll = randomizer.random()
    given = REFERENCE_TIME - timedelta(days=randomizer.randrange(30, 1500))
    if roll < 0.70:
        status = randomizer.choice(("subscribed", "subscribed", "yes", "true"))
    elif roll < 0.85:
        status = randomizer.choice(("unsubscribed", "no"))
    elif roll < 0.97:
        status = "nonSubscribed"
    else:
        return None, None
    return status, _stamp(given)


def _country(randomizer: random.Random, country: str) -> str:
    variants = COUNTRY_VARIANTS.get(country)
    if variants and randomizer.random() < 0.08:
        return randomizer.choice(variants)
    return country


def _address(randomizer: random.Random, locale: Locale) -> str:
    return f"{randomizer.choice(locale.streets)} {randomizer.randrange(1, 180)}"


def _locale_of(customer: Customer) -> Locale:
    for locale in LOCALES:
        if customer.first_name in locale.first_names and customer.last_name in locale.last_names:
            return locale
    return LOCALES[0]


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
