"""Consent: only for contacts new to the export, with the source's time, never "now"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from omnisync.config.model import Consent, FieldMapping
from omnisync.contact import ContactWrite, EmailConsent
from omnisync.mapping import MappingPlan
from omnisync.sourcevalues import consent_status, consent_time
from tests.staging.configs import make_export

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
        ("01/05/2024", None),
        (True, None),
        (float("nan"), None),
        (10**20, None),
    ],
)
def test_consent_times(value: object, expected: datetime | None) -> None:
    assert consent_time(value) == expected


def test_the_sent_time_is_whole_seconds_utc() -> None:
    write, _ = outcome_for({"status": "yes", "changed_at": "2024-05-01T12:30:00.999+03:00"})
    assert write.consent is not None
    assert write.consent.changed_at == "2024-05-01T09:30:00Z"
