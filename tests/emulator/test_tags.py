"""POST/DELETE /contacts/tags: 202, applied asynchronously, unknown contacts ignored."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from omnisync.clock import FakeClock
from omnisync.emulator import Emulator
from omnisync.emulator.contacts import ContactBook
from tests.emulator.conftest import api_client


@pytest.fixture
def tag_emulator(start_emulator: Callable[..., Emulator], fake_clock: FakeClock) -> Emulator:
    return start_emulator(clock=fake_clock, tag_delay=2.0)


def test_tags_are_accepted_then_applied_after_a_modelled_delay(
    tag_emulator: Emulator, fake_clock: FakeClock
) -> None:
    tag_emulator.seed_contact("a@example.com", tags=["theirs"])
    with api_client(tag_emulator) as client:
        response = client.post(
            "/contacts/tags", json={"emails": ["a@example.com"], "tags": ["vip"]}
        )
        assert response.status_code == 202
        assert response.content == b""
        assert tag_emulator.settle()
        assert tag_emulator.contact("a@example.com")["tags"] == ["theirs"]  # type: ignore[index]
        fake_clock.advance(2.0)
        assert tag_emulator.settle()
        assert tag_emulator.contact("a@example.com")["tags"] == ["theirs", "vip"]  # type: ignore[index]


def test_unknown_emails_are_ignored_and_adding_twice_changes_nothing(
    emulator: Emulator, client: httpx.Client
) -> None:
    emulator.seed_contact("b@example.com")
    emails = ["b@example.com", "nobody@example.com", "B@example.com"]
    assert (
        client.post("/contacts/tags", json={"emails": emails, "tags": ["vip"]}).status_code == 202
    )
    assert (
        client.post("/contacts/tags", json={"emails": emails, "tags": ["vip"]}).status_code == 202
    )
    assert emulator.drain()
    assert emulator.contact("b@example.com")["tags"] == ["vip"]  # type: ignore[index]
    assert emulator.contact_count() == 1


def test_delete_removes_only_the_named_tags(emulator: Emulator, client: httpx.Client) -> None:
    emulator.seed_contact("c@example.com", tags=["vip", "theirs", "winter"])
    contact_id = emulator.contact("c@example.com")["id"]  # type: ignore[index]
    response = client.request(
        "DELETE", "/contacts/tags", json={"contactIDs": [contact_id], "tags": ["vip", "winter"]}
    )
    assert response.status_code == 202
    assert emulator.drain()
    assert emulator.contact("c@example.com")["tags"] == ["theirs"]  # type: ignore[index]


def test_tag_calls_are_validated(emulator: Emulator) -> None:
    with api_client(emulator, validate_requests=False) as client:
        for body, field, code in (
            ({"emails": ["a@example.com"]}, "tags", "required"),
            ({"emails": ["a@example.com"], "tags": []}, "tags", "required"),
            (
                {"emails": ["a@example.com"], "tags": [f"t{i}" for i in range(101)]},
                "tags",
                "too_long",
            ),
            (
                {"emails": [f"{i}@example.com" for i in range(251)], "tags": ["x"]},
                "emails",
                "too_long",
            ),
            ({"contactIDs": list(range(3)), "tags": ["x"]}, "contactIDs", "invalid_format"),
            ({"tags": ["x"]}, "emails", "required"),
        ):
            response = client.post("/contacts/tags", json=body)
            assert response.status_code == 400, body
            assert (field, code) in {(e["field"], e["code"]) for e in response.json()["errors"]}


def test_the_request_log_names_the_tagged_emails(emulator: Emulator, client: httpx.Client) -> None:
    client.post(
        "/contacts/tags", json={"emails": ["x@example.com", "y@example.com"], "tags": ["t"]}
    )
    [record] = emulator.request_log()
    assert (record.endpoint, record.status) == ("POST /contacts/tags", 202)
    assert record.emails == ("x@example.com", "y@example.com")


def test_adding_one_tag_to_contacts_with_various_tags() -> None:
    book = ContactBook()
    for email, tags in (("a@x.io", ()), ("b@x.io", ("x",)), ("c@x.io", ("new",)), ("d@x.io", ())):
        identifier = {"type": "email", "id": email, "channels": {"email": {"status": "subscribed"}}}
        book.seed({"identifiers": [identifier], "tags": list(tags)}, at=1.0)
    emails = ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "a@x.io", "nobody@x.io"]
    changed = book.change_tags({"tags": ["new"], "emails": emails}, remove=False, at=2.0)
    assert changed == 3
    found = {email: book.by_email[email] for email in ("a@x.io", "b@x.io", "c@x.io", "d@x.io")}
    assert {email: record.tags for email, record in found.items()} == {
        "a@x.io": ("new",), "b@x.io": ("x", "new"), "c@x.io": ("new",), "d@x.io": ("new",)
    }  # fmt: skip
    assert [record.updated for record in found.values()] == [2.0, 2.0, 1.0, 2.0]
    assert found["a@x.io"].tags is found["d@x.io"].tags  # one shared tuple
