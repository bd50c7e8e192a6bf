"""E-mail normalisation and the practical RFC 5321/5322 check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisync.emails import _email_problem_in_detail, email_problem, normalise_email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Olena.Kovalenko@Example.COM \t", "olena.kovalenko@example.com"),
        ("ÖMER@Straße.de", "ömer@straße.de"),
        ("ОЛЕНА@ПРИКЛАД.УКР", "олена@приклад.укр"),  # noqa: RUF001
        (b"Bytes@Example.com", "bytes@example.com"),
        (12345, "12345"),
        ("   ", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_email_trims_and_lower_cases_unicode_too(
    raw: object, expected: str | None
) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    "email",
    [
        "olena@example.com",
        "o.kovalenko+news@mail.example.co.uk",
        "ölçü@örnek.com.tr",
        "олена@приклад.укр",
        "x_y-z!#$%&'*/=?^`{|}~@example.io",
        "a@b.co",
        f"{'l' * 64}@example.com",
        f"a@{'d' * 63}.{'e' * 63}.{'f' * 63}.{'g' * 60}",
    ],
)
def test_valid_addresses(email: str) -> None:
    assert email_problem(email) is None


def test_the_longest_address_allowed_is_254_octets() -> None:
    longest = f"a@{'d' * 63}.{'e' * 63}.{'f' * 63}.{'g' * 60}"
    assert len(longest.encode()) == 254
    assert email_problem(longest) is None
    assert email_problem(longest + "g") == "e-mail is longer than 254 octets"


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        ("plainaddress", "e-mail must contain exactly one @"),
        ("a@b@example.com", "e-mail must contain exactly one @"),
        ("@example.com", "e-mail has nothing before the @"),
        ("olena@", "e-mail has nothing after the @"),
        ("olena@localhost", "e-mail domain has no dot"),
        ("ol ena@example.com", "e-mail contains spaces or control characters"),
        ("olena@exa\u200bmple.com", "e-mail contains spaces or control characters"),
        ("olena\x00@example.com", "e-mail contains spaces or control characters"),
        # What a decoder upstream leaves of bytes that were not UTF-8.
        ("ol\ufffdna@example.com", "e-mail is binary data, not UTF-8 text"),
        ("o(lena)@example.com", "e-mail has characters not allowed before the @"),
        ('"olena"@example.com', "e-mail has characters not allowed before the @"),
        (".olena@example.com", "e-mail has a misplaced dot before the @"),
        ("olena.@example.com", "e-mail has a misplaced dot before the @"),
        ("o..lena@example.com", "e-mail has a misplaced dot before the @"),
        ("olena@example..com", "e-mail domain is malformed"),
        ("olena@.example.com", "e-mail domain is malformed"),
        ("olena@example.com.", "e-mail domain is malformed"),
        ("olena@-example.com", "e-mail domain is malformed"),
        ("olena@example.123", "e-mail domain is malformed"),
        ("olena@exa_mple.com", "e-mail domain has characters that are not allowed"),
        ("olena@[192.168.0.1]", "e-mail domain has characters that are not allowed"),
        (f"{'l' * 65}@example.com", "e-mail part before the @ is longer than 64 octets"),
        (f"{'щ' * 33}@example.com", "e-mail part before the @ is longer than 64 octets"),
        (f"a@{'d' * 63}.{'e' * 63}.{'f' * 63}.{'g' * 61}", "e-mail is longer than 254 octets"),
        (f"a@{'d' * 64}.com", "e-mail domain is malformed"),
    ],
)
def test_invalid_addresses_say_why(email: str, reason: str) -> None:
    assert email_problem(email) == reason


@pytest.mark.parametrize(
    "raw", [b"Ann\xe9@Example.com", b"ann@exampl\xe9.com", b"\xff\xfe@example.com"]
)
def test_an_email_of_bytes_that_are_not_utf8_is_keyed_but_never_sendable(raw: bytes) -> None:
    email = normalise_email(raw)
    # Still a key (staging stores it, so the row is counted), never an address.
    assert isinstance(email, str) and email == email.lower()
    assert email_problem(email) == "e-mail is binary data, not UTF-8 text"


ALPHABET = 'ab.@-_+9 Z\t"é(ж' + "a" * 10


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=ALPHABET, max_size=30),
        st.builds(
            lambda local, domain, tld: f"{local}@{domain}.{tld}",
            st.text(alphabet=ALPHABET, min_size=1, max_size=70),
            st.text(alphabet=ALPHABET, min_size=1, max_size=70),
            st.text(alphabet="ab9-", min_size=1, max_size=66),
        ),
    )
)
def test_the_fast_path_agrees_with_the_detailed_check(email: str) -> None:
    assert email_problem(email) == _email_problem_in_detail(email)
