"""contact_body (the safety rules) and BatchPacker (item and byte limits, streaming)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisync.contact import ContactWrite, EmailConsent
from omnisync.masking import mask_email
from omnisync.omnisend.errors import InvalidContactWrite, ItemTooLarge
from omnisync.omnisend.payloads import (
    CONTACT_FIELDS,
    BatchPacker,
    EncodedBatch,
    contact_body,
)
from tests.openapi_contract import validate_request

emails = st.from_regex(r"[a-z][a-z0-9._]{0,20}@[a-z]{1,12}\.(com|org|lt)", fullmatch=True)
texts = st.text(min_size=1, max_size=40)
consents = st.builds(
    EmailConsent,
    status=st.sampled_from(["subscribed", "unsubscribed", "nonSubscribed"]),
    changed_at=st.sampled_from(["2024-03-01T10:00:00Z", "2019-12-31T23:59:59+02:00"]),
    ip=st.none() | st.just("192.0.2.7"),
    user_agent=st.none() | st.just("Mozilla/5.0"),
    source=st.none() | st.just("shop-checkout"),
)
contact_writes = st.builds(
    ContactWrite,
    email=emails,
    fields=st.builds(
        lambda plain, gender: {**plain, **gender},
        st.dictionaries(st.sampled_from(sorted(CONTACT_FIELDS - {"gender"})), texts, max_size=6),
        st.fixed_dictionaries({}, optional={"gender": st.sampled_from(["m", "f"])}),
    ),
    custom_properties=st.dictionaries(
        st.from_regex(r"[A-Za-z0-9_]{1,20}", fullmatch=True) | st.just("tags"), texts, max_size=5
    ),
    consent=st.none() | consents,
    send_welcome_message=st.booleans(),
)
# Writes a buggy caller could build: any field name, "tags" and "identifiers" included.
any_field_writes = st.builds(
    ContactWrite,
    email=emails,
    fields=st.dictionaries(
        st.sampled_from([*sorted(CONTACT_FIELDS), "tags", "identifiers", "Tags"]) | texts,
        texts,
        max_size=6,
    ),
)


@settings(max_examples=200, deadline=None)
@given(write=contact_writes | any_field_writes)
def test_a_contact_body_never_carries_tags(write: ContactWrite) -> None:
    try:
        body = contact_body(write)
    except InvalidContactWrite as error:
        assert set(write.fields) - CONTACT_FIELDS, "refused a write with only allowed fields"
        assert write.email not in str(error)
        return
    assert "tags" not in body
    assert all("tags" not in identifier for identifier in body["identifiers"])
    assert set(body) <= {*CONTACT_FIELDS, "identifiers", "customProperties"}


@settings(max_examples=40, deadline=None)
@given(write=contact_writes)
def test_a_contact_body_follows_the_published_contract(write: ContactWrite) -> None:
    body = contact_body(write)
    validate_request("POST", "/contacts", body)
    assert body["identifiers"][0]["id"] == write.email
    assert body["identifiers"][0]["sendWelcomeMessage"] is write.send_welcome_message
    assert {name: body[name] for name in write.fields} == dict(write.fields)
    assert body.get("customProperties", {}) == dict(write.custom_properties)


def test_welcome_message_is_sent_explicitly_as_false_unless_asked() -> None:
    plain = contact_body(ContactWrite(email="ana@example.com"))
    assert plain["identifiers"][0]["sendWelcomeMessage"] is False
    asked = contact_body(ContactWrite(email="ana@example.com", send_welcome_message=True))
    assert asked["identifiers"][0]["sendWelcomeMessage"] is True


def test_no_channel_status_without_consent() -> None:
    identifier = contact_body(ContactWrite(email="ana@example.com", fields={"firstName": "Ana"}))[
        "identifiers"
    ][0]
    assert identifier == {"type": "email", "id": "ana@example.com", "sendWelcomeMessage": False}


def test_consent_is_sent_with_its_recorded_time_never_now() -> None:
    consent = EmailConsent(
        status="subscribed",
        changed_at="2021-06-01T08:30:00Z",
        ip="192.0.2.1",
        user_agent="Mozilla/5.0",
        source="checkout",
    )
    identifier = contact_body(ContactWrite(email="ana@example.com", consent=consent))[
        "identifiers"
    ][0]
    assert identifier["channels"] == {
        "email": {"status": "subscribed", "statusChangedAt": "2021-06-01T08:30:00Z"}
    }
    assert identifier["consent"] == {
        "createdAt": "2021-06-01T08:30:00Z",
        "source": "checkout",
        "ip": "192.0.2.1",
        "userAgent": "Mozilla/5.0",
    }


def test_an_unsubscribe_carries_its_status_but_no_consent_record() -> None:
    consent = EmailConsent(status="unsubscribed", changed_at="2022-01-01T00:00:00Z", ip="192.0.2.1")
    identifier = contact_body(ContactWrite(email="ana@example.com", consent=consent))[
        "identifiers"
    ][0]
    assert identifier["channels"]["email"] == {
        "status": "unsubscribed",
        "statusChangedAt": "2022-01-01T00:00:00Z",
    }
    assert "consent" not in identifier


def test_a_tags_field_is_refused_with_a_masked_email() -> None:
    write = ContactWrite(email="olena.kovalenko@example.com", fields={"tags": "vip"})
    expected = re.escape(f"{mask_email(write.email)} sets tags")
    with pytest.raises(InvalidContactWrite, match=expected) as caught:
        contact_body(write)
    assert "olena.kovalenko" not in str(caught.value)


def numbered(count: int, *, padding: int = 0) -> list[ContactWrite]:
    return [
        ContactWrite(
            email=f"person{index}@example.com",
            custom_properties={"notes": "x" * padding} if padding else {},
        )
        for index in range(count)
    ]


def packed(writes: Iterable[ContactWrite], **limits: int) -> Iterator[EncodedBatch]:
    """``writes`` packed one at a time, as the delivery pipeline packs them."""
    packer = BatchPacker(**limits)
    for write in writes:
        full = packer.pack(write)
        if full is not None:
            yield full
    last = packer.flush_packed()
    if last is not None:
        yield last


def test_batches_hold_at_most_100_items_in_order() -> None:
    writes = numbered(250)
    batches = list(packed(writes))
    assert [len(batch) for batch in batches] == [100, 100, 50]
    assert [email for batch in batches for email in batch.emails] == [w.email for w in writes]


def test_batches_stay_under_the_byte_limit_envelope_included() -> None:
    writes = numbered(30, padding=20_000)  # about 20 kB each: 1 MB holds 49 of them
    batches = list(packed(writes))
    assert len(batches) == 1
    batches = list(packed(writes, max_bytes=100_000))
    sizes = [len(batch.body()) for batch in batches]
    assert all(size <= 100_000 for size in sizes)
    assert [len(batch) for batch in batches] == [4] * 7 + [2]
    # Each batch is full: the next write would not have fitted.
    item_size = len(orjson.dumps(contact_body(writes[0])))
    assert all(size + 1 + item_size > 100_000 for size in sizes[:-1])


@settings(max_examples=60, deadline=None)
@given(
    paddings=st.lists(st.integers(min_value=0, max_value=3_000), min_size=0, max_size=60),
    max_items=st.integers(min_value=1, max_value=12),
    max_bytes=st.integers(min_value=3_200, max_value=20_000),
)
def test_packing_is_greedy_lossless_and_within_both_limits(
    paddings: list[int], max_items: int, max_bytes: int
) -> None:
    writes = [
        ContactWrite(email=f"p{index}@example.com", custom_properties={"n": "y" * padding})
        for index, padding in enumerate(paddings)
    ]
    batches = list(packed(writes, max_items=max_items, max_bytes=max_bytes))
    assert [email for batch in batches for email in batch.emails] == [w.email for w in writes]
    expected = [orjson.dumps(contact_body(write)) for write in writes]
    assert [item for batch in batches for item in batch.items] == expected
    for index, batch in enumerate(batches):
        body = batch.body()
        assert len(batch) <= max_items and len(body) <= max_bytes
        json.loads(body)
        if index + 1 < len(batches):
            following = len(batches[index + 1].items[0])
            assert len(batch) == max_items or len(body) + 1 + following > max_bytes


@settings(max_examples=40, deadline=None)
@given(writes=st.lists(contact_writes, min_size=0, max_size=30))
def test_a_batch_holds_its_items_in_one_object_and_gives_them_back_exactly(
    writes: list[ContactWrite],
) -> None:
    # A batch is kept until Omnisend is done with it: a hundred small objects per batch
    # kept that long fragmented the heap (the 1M benchmark's peak RSS: +30 MB at 300k).
    writes = [*writes, ContactWrite(email="a@b.io", fields={"city": 'A\n,B\u2028"]'})]
    (batch,) = packed(writes)
    held = [value for name, value in vars(batch).items() if name != "emails"]
    assert not [value for value in held if isinstance(value, tuple)]
    expected = [orjson.dumps(contact_body(write)) for write in writes]
    assert list(batch.items) == expected
    envelope = b'{"endpoint":"contacts","method":"POST","items":[%s]}'
    assert batch.body() == envelope % b",".join(expected)


def test_packing_streams_holding_one_batch_at_a_time() -> None:
    consumed = 0

    def endless() -> Iterator[ContactWrite]:
        nonlocal consumed
        while True:
            consumed += 1
            yield ContactWrite(email=f"stream{consumed}@example.com")

    batches = packed(endless())
    assert len(next(batches)) == 100
    assert consumed == 101  # the 101st write is what showed the first batch was full
    assert len(next(batches)) == 100
    assert consumed == 201


def test_a_contact_too_large_alone_is_named_masked() -> None:
    writes = [
        ContactWrite(email="small@example.com"),
        ContactWrite(email="huge.person@example.com", custom_properties={"blob": "z" * 5_000}),
    ]
    with pytest.raises(ItemTooLarge, match=re.escape(mask_email(writes[1].email))) as caught:
        list(packed(writes, max_bytes=2_000))
    assert "huge.person" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_full_batch_body_is_what_the_contract_accepts() -> None:
    [batch] = packed(numbered(100))
    validate_request("POST", "/batches", json.loads(batch.body()))
