"""The quick pass for plain contact bodies agrees with the general rules (plain.py's contract)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from omnisync.emulator.brand import Brand
from omnisync.emulator.contacts import ContactBook, ContactRecord
from omnisync.emulator.plain import upsert_plain
from omnisync.emulator.validation import validate_contact

AT = 1_750_000_000.0
LATER = AT + 60.0


def _body(email: str = "ann@example.com", **fields: Any) -> dict[str, Any]:
    identifier: dict[str, Any] = {"type": "email", "id": email}
    if "welcome" in fields:
        identifier["sendWelcomeMessage"] = fields.pop("welcome")
    return {"identifiers": [identifier], **fields}


PLAIN = [
    _body(),
    _body(welcome=False),
    _body(welcome=True, firstName="Ann", lastName="Ĺee"),
    _body(welcome=False, city="Kraków", country="Poland", countryCode="PL"),
    _body(country="Lithuania"),
    _body(country="Atlantis"),
    _body(countryCode="ZZ"),
    _body(countryCode="DE", country="Somewhere"),
    _body(address="1 Main St", state="CA", postalCode="94000"),
    _body(customProperties={"tier": "gold", "value": 12.5, "count": 3, "vip": True, "gone": None}),
    _body(customProperties={}),
    _body(firstName="A" * 128, customProperties={"long": "x" * 2048}),
    _body(somethingUnknown=[1, 2], firstName="Bo"),
]

GENERAL = [
    "not a dict",
    {},
    {"identifiers": []},
    {"identifiers": "ann@example.com"},
    {"identifiers": [{"type": "phone", "id": "+37060000000"}]},
    {"identifiers": [{"type": "email", "id": "a@x.io"}, {"type": "phone", "id": "+37060000000"}]},
    _body("not-an-email"),
    _body("a" * 250 + "@x.io"),
    _body(welcome="yes"),
    _body(welcome=None),
    {"identifiers": [{"type": "email", "id": "a@x.io", "channels": {"email": {"status": "x"}}}]},
    {"identifiers": [{"type": "email", "id": "a@x.io", "consent": {"ip": "1.2.3.4"}}]},
    _body(firstName="A" * 129),
    _body(postalCode="9" * 33),
    _body(firstName=None),
    _body(city=5),
    _body(countryCode="pl"),
    _body(countryCode="POL"),
    _body(countryCode=None),
    _body(tags=["a"]),
    _body(birthdate="2000-01-01"),
    _body(gender="f"),
    _body(createdAt="2025-01-01T00:00:00Z"),
    _body(customProperties={"bad name": "x"}),
    _body(customProperties={"list": ["a", 1]}),
    _body(customProperties={"nested": {"a": 1}}),
    _body(customProperties={"long": "x" * 2049}),
    _body(customProperties="x"),
]


def _state(book: ContactBook) -> dict[str, Any]:
    records = [
        {slot: copy.deepcopy(getattr(record, slot)) for slot in ContactRecord.__slots__}
        for record in book.records
    ]
    return {
        "records": records,
        "rendered": [book.render(record) for record in book.records],
        "welcome": list(book.welcome_messages),
        "changes": list(book.status_changes),
        "emails": list(book.by_email),
    }


@pytest.mark.parametrize("body", PLAIN + GENERAL)
def test_a_body_taken_as_plain_is_valid(body: Any) -> None:
    if upsert_plain(ContactBook(), copy.deepcopy(body), at=AT) is not None:
        assert validate_contact(body, creating=True) == []


@pytest.mark.parametrize("body", PLAIN)
def test_plain_bodies_are_recognised(body: dict[str, Any]) -> None:
    assert upsert_plain(ContactBook(), copy.deepcopy(body), at=AT) is True


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("body", GENERAL)
def test_other_bodies_take_the_general_path_untouched(body: Any, existing: bool) -> None:
    book = _seeded() if existing else ContactBook()
    before = _state(book)
    assert upsert_plain(book, copy.deepcopy(body), at=LATER) is None
    assert _state(book) == before


def _seeded() -> ContactBook:
    book = ContactBook(id_prefix="0a")
    book.seed(
        "ann@example.com",
        at=AT - 3600,
        fields={"firstName": "Old", "city": "Vilnius", "country": "Lithuania"},
        custom_properties={"tier": "silver", "kept": 1},
        tags=["theirs"],
        status="subscribed",
    )
    book.seed("other@example.com", at=AT - 7200)
    return book


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("body", PLAIN)
def test_upsert_plain_leaves_the_book_as_upsert_does(body: dict[str, Any], existing: bool) -> None:
    general, quick = (_seeded(), _seeded()) if existing else (ContactBook(), ContactBook())
    status, _ = general.upsert(copy.deepcopy(body), at=LATER)
    assert upsert_plain(quick, copy.deepcopy(body), at=LATER) is (status == 201)
    assert _state(quick) == _state(general)


def test_a_batch_mixing_plain_and_general_items_matches_post_contacts() -> None:
    items = [*PLAIN, *GENERAL, _body("ann@example.com", tags=["mine"], city="Riga")]
    brand = Brand("b", index=1, requests_per_minute=400, tags_per_minute=60)
    batch = brand.new_batch(
        {"endpoint": "contacts", "method": "POST", "items": copy.deepcopy(items)},
        raw=b"{}",
        at=AT,
    )
    brand.start_batch(batch, at=LATER, failing_emails=frozenset(), stop_after=None)
    reference = ContactBook(id_prefix=f"{1:08x}")
    expected = bytearray()
    for item in copy.deepcopy(items):
        if validate_contact(item, creating=True):
            expected.append(3)  # FAILED
        else:
            expected.append(2 if reference.upsert(item, at=LATER)[0] == 201 else 1)
    assert batch.results == expected
    assert batch.finished_count == len(items)
    assert batch.errors_count == expected.count(3)
    assert _state(brand.book) == _state(reference)
