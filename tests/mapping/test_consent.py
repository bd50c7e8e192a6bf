"""Consent: only for contacts new to the export, with the source's time, never "now"."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from omnisync.config.model import Consent, FieldMapping
from omnisync.contact import ContactWrite, EmailConsent
from omnisync.engine.report import plan_export
from omnisync.mapping import MappingPlan
from omnisync.sourcevalues import consent_status, consent_time, rfc3339
from tests.staging.configs import CUSTOMER_COLUMNS, consent_export, make_config, make_export

EXPORT = make_export(
    mapping=FieldMapping(email="email"),
    consent=Consent(
        status_column="status",
        changed_at_column="changed_at",
        ip_column="ip",
        user_agent_column="agent",
        source="signup-form",
    ),
)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def outcome_for(
    row: dict[str, object], *, in_ledger: bool = False
) -> tuple[ContactWrite, tuple[str, ...]]:
    outcome = MappingPlan(EXPORT).map_row(
        {"email": "olena@example.com", **row}, in_ledger=in_ledger, now=NOW
    )
    assert isinstance(outcome.result, ContactWrite)
    return outcome.result, outcome.warnings


def test_a_new_contact_carries_the_status_with_the_time_the_source_recorded() -> None:
    write, warnings = outcome_for(
        {
            "status": "subscribed",
            "changed_at": "2024-05-01T09:30:15+03:00",
            "ip": "192.0.2.7",
            "agent": "Mozilla/5.0",
        }
    )
    assert warnings == ()
    assert write.consent == EmailConsent(
        status="subscribed",
        changed_at="2024-05-01T06:30:15Z",
        ip="192.0.2.7",
        user_agent="Mozilla/5.0",
        source="signup-form",
    )


def test_never_now_a_status_without_a_parsable_time_sends_no_status_and_warns() -> None:
    for changed_at in (None, "", "yesterday", "2024-13-45"):
        write, warnings = outcome_for({"status": "subscribed", "changed_at": changed_at})
        assert write.consent is None
        assert warnings == ("consent status without a parsable time; no status sent",)


def test_a_time_in_the_future_is_not_trusted() -> None:
    write, warnings = outcome_for({"status": "subscribed", "changed_at": "2031-01-01T00:00:00Z"})
    assert write.consent is None
    assert warnings == ("consent time is in the future; no status sent",)


def test_never_for_a_contact_already_in_the_ledger() -> None:
    write, warnings = outcome_for(
        {"status": "unsubscribed", "changed_at": "2024-05-01T09:30:00Z"}, in_ledger=True
    )
    assert write.consent is None
    assert warnings == ()


def test_no_consent_mapping_means_no_status_ever() -> None:
    export = make_export(mapping=FieldMapping(email="email"))
    outcome = MappingPlan(export).map_row(
        {"email": "a@example.com", "status": "subscribed", "changed_at": "2024-01-01"},
        in_ledger=False,
    )
    assert isinstance(outcome.result, ContactWrite)
    assert outcome.result.consent is None


def test_an_unrecognised_status_sends_none_and_warns_but_a_blank_one_is_silent() -> None:
    write, warnings = outcome_for({"status": "maybe", "changed_at": "2024-01-01"})
    assert write.consent is None
    assert warnings == ("consent status not recognised; no status sent",)
    write, warnings = outcome_for({"status": "  ", "changed_at": "2024-01-01"})
    assert write.consent is None
    assert warnings == ()


@pytest.mark.parametrize(
    ("spelling", "status"),
    [
        ("subscribed", "subscribed"),
        ("SUBSCRIBED", "subscribed"),
        ("yes", "subscribed"),
        ("True", "subscribed"),
        ("1", "subscribed"),
        (1, "subscribed"),
        (True, "subscribed"),
        ("unsubscribed", "unsubscribed"),
        ("no", "unsubscribed"),
        ("false", "unsubscribed"),
        ("0", "unsubscribed"),
        (0, "unsubscribed"),
        (0.0, "unsubscribed"),
        ("nonSubscribed", "nonSubscribed"),
        ("non_subscribed", "nonSubscribed"),
        ("Not subscribed", "nonSubscribed"),
        ("unknown", None),
        (None, None),
        (2, None),
    ],
)
def test_status_spellings(spelling: object, status: str | None) -> None:
    assert consent_status(spelling) == status


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T09:30:00Z", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("2024-05-01 09:30:00", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("2024-05-01T12:30:00.123+03:00", datetime(2024, 5, 1, 9, 30, 0, 123000, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        (1714555800, datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        (1714555800.5, datetime(2024, 5, 1, 9, 30, 0, 500000, tzinfo=UTC)),
        # PostgreSQL's extract(epoch from ...) is a numeric: a Decimal through psycopg.
        (Decimal("1714555800.000000"), datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        (Decimal("1714555800.5"), datetime(2024, 5, 1, 9, 30, 0, 500000, tzinfo=UTC)),
        (Fraction(3429111601, 2), datetime(2024, 5, 1, 9, 30, 0, 500000, tzinfo=UTC)),
        # ... which a PostgreSQL source stages as its exact text; a CSV holds text too.
        ("1714555800.000000", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        (" 1714555800 ", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("20240501", datetime(2024, 5, 1, tzinfo=UTC)),  # ISO 8601's basic date first
        ("1714555800.5.1", None),
        ("9" * 30 + ".5", None),  # past year 9999
        ("01/05/2024", None),
        (True, None),
        (float("nan"), None),
        (10**20, None),
        (Decimal("NaN"), None),
        (Decimal("sNaN"), None),
        (Decimal("-Infinity"), None),
        (Decimal("1e400"), None),
        # Readable, but the instant lies outside what a datetime can hold once in UTC.
        ("0001-01-01T00:00:00+01:00", None),
        ("9999-12-31T23:59:59-01:00", None),
        ("0001-01-01T00:59:59+01:00", None),
        # The edges themselves are instants like any other.
        ("0001-01-01T01:00:00+01:00", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T22:59:59-01:00", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_consent_times(value: object, expected: datetime | None) -> None:
    assert consent_time(value) == expected


def test_the_sent_time_is_whole_seconds_utc() -> None:
    write, _ = outcome_for({"status": "yes", "changed_at": "2024-05-01T12:30:00.999+03:00"})
    assert write.consent is not None
    assert write.consent.changed_at == "2024-05-01T09:30:00Z"


def test_an_epoch_time_from_a_postgresql_numeric_carries_the_status() -> None:
    write, warnings = outcome_for({"status": "subscribed", "changed_at": Decimal("1714555800.0")})
    assert warnings == ()
    assert write.consent is not None
    assert write.consent.changed_at == "2024-05-01T09:30:00Z"


@pytest.mark.parametrize("changed_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_beyond_the_calendar_is_unusable_not_a_crash(changed_at: str) -> None:
    write, warnings = outcome_for({"status": "subscribed", "changed_at": changed_at})
    assert write.consent is None
    assert warnings == ("consent status without a parsable time; no status sent",)


def test_plan_over_a_csv_with_times_beyond_the_calendar_warns_and_carries_on(
    tmp_path: Path,
) -> None:
    source = tmp_path / "customers.csv"
    times = [
        ("a@example.com", "0001-01-01T00:00:00+01:00"),
        ("b@example.com", "9999-12-31T23:59:59-01:00"),
        ("c@example.com", "2024-05-01T09:30:00Z"),
    ]
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CUSTOMER_COLUMNS)
        writer.writeheader()
        for number, (email, changed_at) in enumerate(times, start=1):
            writer.writerow(
                {
                    "id": number,
                    "email": email,
                    "email_status": "subscribed",
                    "email_status_changed_at": changed_at,
                }
            )
    config = make_config(
        source_path=source,
        kind="csv",
        query=None,
        exports=[consent_export()],
        state_dir=tmp_path / "state",
    )
    report = plan_export(config, "vip", now=NOW)
    assert (report.members, report.invalid, report.to_create) == (3, 0, 3)
    assert [(warning.reason, warning.count) for warning in report.warnings] == [
        ("consent status without a parsable time; no status sent", 2)
    ]


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
        (datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "0999-12-31T23:59:59Z"),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), "9999-12-31T23:59:59Z"),
        (datetime.fromisoformat("2024-05-01T12:30:00.5+03:00"), "2024-05-01T09:30:00Z"),
    ],
)
def test_rfc3339_always_writes_a_four_digit_year(moment: datetime, text: str) -> None:
    assert rfc3339(moment) == text


@pytest.mark.parametrize(
    "changed_at",
    [
        "0001-01-01T00:00:00",
        "1970-01-01T00:00:00Z",
        0,
        0.5,  # 1970-01-01T00:00:00Z once cut to whole seconds
        "1970-01-01 02:00:00",  # epoch 0 as local time east of UTC (MySQL's FROM_UNIXTIME)
        "1970-01-01T23:59:59Z",
    ],
)
def test_a_no_date_consent_time_sends_no_status(changed_at: object) -> None:
    # .NET's and Go's year 1 and Unix's epoch 0 mean "no date": Omnisend might read
    # one as "now", and a stale subscribe must never win over an unsubscribe.
    write, warnings = outcome_for({"status": "subscribed", "changed_at": changed_at})
    assert write.consent is None
    assert warnings == ("consent time is a 'no date' value (1970 or before); no status sent",)
    later, warnings = outcome_for({"status": "subscribed", "changed_at": "1970-01-02T00:00:00Z"})
    assert later.consent is not None and warnings == ()


def test_a_consent_detail_that_cannot_be_sent_as_it_is_is_left_out_with_a_warning() -> None:
    write, warnings = outcome_for(
        {
            "status": "subscribed",
            "changed_at": "2024-05-01T10:00:00Z",
            "ip": "192.0.2.7\x07",
            "agent": "M" * 256,
        }
    )
    assert write.consent is not None
    assert (write.consent.ip, write.consent.user_agent) == ("192.0.2.7", None)
    assert warnings == (
        "consent ip: control characters removed",
        "consent user agent is longer than 255 characters; not sent",
    )


def test_a_postgresql_numeric_epoch_is_a_consent_time_as_the_source_stages_it() -> None:
    from omnisync.sources.postgres import canonical

    staged = canonical(Decimal("1714555800.000000"))  # extract(epoch from ...)
    assert consent_time(staged) == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
