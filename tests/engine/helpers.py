"""Shared pieces of the engine tests: a sample segment database, configs, request-log views."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnisync.emulator import Emulator, RequestRecord

API_KEY_VARIABLE = "OMNISYNC_TEST_API_KEY"

#: Names in several scripts: everything must reach Omnisend intact.
NAMES: tuple[tuple[str, str, str, str], ...] = (
    ("Олена", "Коваленко", "Київ", "Ukraine"),
    ("Łukasz", "Wójcik", "Kraków", "Poland"),
    ("Rūta", "Žukauskaitė", "Vilnius", "Lithuania"),
    ("Jürgen", "Müller", "München", "Germany"),
    ("Íñigo", "Peña", "A Coruña", "Spain"),
    ("Emily", "O'Connor", "London", "United Kingdom"),
    ("Sunny ☀️", "Smith", "Austin", "United States"),
    ("Taras", "Melnyk", "Lviv", "Ukraine"),
)


@dataclass(frozen=True)
class Person:
    id: int
    email: str | None
    first_name: str
    last_name: str
    city: str
    country: str
    tier: str = "gold"
    status: str | None = "subscribed"
    status_at: str | None = "2024-05-01T10:00:00Z"


def person(number: int, **changes: Any) -> Person:
    first, last, city, country = NAMES[number % len(NAMES)]
    values: dict[str, Any] = {
        "id": number,
        "email": f"person{number}@example.com",
        "first_name": first,
        "last_name": last,
        "city": city,
        "country": country,
    }
    values.update(changes)
    return Person(**values)


def people(count: int, *, start: int = 0) -> list[Person]:
    return [person(number) for number in range(start, start + count)]


def write_segment(path: Path, rows: Iterable[Person]) -> None:
    """(Re)create the ``people`` table at ``path`` holding ``rows``."""
    connection = sqlite3.connect(path)
    connection.execute("DROP TABLE IF EXISTS people")
    connection.execute(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, first_name TEXT, "
        "last_name TEXT, city TEXT, country TEXT, tier TEXT, status TEXT, status_at TEXT)"
    )
    connection.executemany(
        "INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                p.id,
                p.email,
                p.first_name,
                p.last_name,
                p.city,
                p.country,
                p.tier,
                p.status,
                p.status_at,
            )
            for p in rows
        ],
    )
    connection.commit()
    connection.close()


def execute(path: Path, statement: str, parameters: Sequence[Any] = ()) -> None:
    connection = sqlite3.connect(path)
    connection.execute(statement, parameters)
    connection.commit()
    connection.close()


def write_config(
    directory: Path,
    *,
    base_url: str,
    database: Path,
    state_dir: Path,
    tag: str = "members",
    on_leave: str = "untag",
    max_profiles: int | None = None,
    query: str = "SELECT * FROM people WHERE tier = 'gold'",
    consent: bool = True,
    requests_per_minute: int = 400,
    tags_per_minute: int = 60,
    guards: str | None = None,
) -> Path:
    """A one-export config (export ``members``) as YAML, loaded the way users' configs are."""
    lines = [
        "version: 1",
        "users:",
        "  olena: {role: admin}",
        "  marko: {role: contributor}",
        "sources:",
        f"  crm: {{kind: sqlite, path: '{database}'}}",
        "segments:",
        "  members:",
        "    source: crm",
        "    query: |",
        f"      {query}",
        "connections:",
        "  shop:",
        "    kind: omnisend",
        "    display_name: Shop",
        f"    api_key: {{env: {API_KEY_VARIABLE}}}",
        f"    base_url: '{base_url}'",
        "    allowed_users: [marko]",
        "    data_transfer_accepted: true",
        "    rate_limit:",
        f"      requests_per_minute: {requests_per_minute}",
        f"      tags_per_minute: {tags_per_minute}",
        "exports:",
        "  members:",
        "    segment: members",
        "    connection: shop",
        "    owner: marko",
        f"    tag: {tag}",
        f"    on_leave: {on_leave}",
        "    mapping:",
        "      email: email",
        "      first_name: first_name",
        "      last_name: last_name",
        "      city: city",
        "      country: country",
    ]
    if consent:
        lines += [
            "    consent:",
            "      status_column: status",
            "      changed_at_column: status_at",
        ]
    if max_profiles is not None:
        lines.append(f"    max_profiles: {max_profiles}")
    if guards is not None:
        lines.append(f"    guards: {guards}")
    lines += ["daemon:", f"  state_dir: '{state_dir}'"]
    path = directory / "omnisync.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- the emulator's request log --------------------------------------------------------


def log_since(
    emulator: Emulator, sequence: int, *, brand: str | None = None
) -> list[RequestRecord]:
    return [record for record in emulator.request_log(brand=brand) if record.sequence > sequence]


def last_sequence(emulator: Emulator) -> int:
    records = emulator.request_log()
    return records[-1].sequence if records else 0


def emails_of(records: Iterable[RequestRecord], endpoint: str) -> Counter[str]:
    """How many times each e-mail appears in accepted requests to ``endpoint``."""
    counted: Counter[str] = Counter()
    for record in records:
        if record.endpoint == endpoint and record.status is not None and record.status < 300:
            counted.update(record.emails)
    return counted


UPSERTS = "POST /batches"
TAG_ADDS = "POST /contacts/tags"
TAG_REMOVALS = "DELETE /contacts/tags"
WRITES = frozenset({UPSERTS, TAG_ADDS, TAG_REMOVALS, "POST /contacts", "PATCH /contacts"})


def comparable_contacts(emulator: Emulator, *, brand: str | None = None) -> dict[str, Any]:
    """The brand's contacts by e-mail, without ids and timestamps, tags sorted."""
    found = {}
    for contact in emulator.contacts(brand=brand):
        kept = {
            key: value
            for key, value in contact.items()
            if key not in ("id", "createdAt", "updatedAt")
        }
        kept["tags"] = sorted(kept.get("tags", []))
        found[contact["email"]] = kept
    return found


# -- the CLI as a real process ------------------------------------------------------------


def omnisync(
    *arguments: str, api_key: str | None = "test-key", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ)
    environment.pop(API_KEY_VARIABLE, None)
    if api_key is not None:
        environment[API_KEY_VARIABLE] = api_key
    return subprocess.run(
        [sys.executable, "-m", "omnisync", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )


def omnisync_process(*arguments: str, api_key: str = "test-key") -> subprocess.Popen[str]:
    environment = dict(os.environ)
    environment[API_KEY_VARIABLE] = api_key
    return subprocess.Popen(
        [sys.executable, "-m", "omnisync", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
