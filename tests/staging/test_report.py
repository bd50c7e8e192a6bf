"""Plan reports: counts from staging plus mapping outcomes, and their renderings."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from omnisync.config.model import Config, Consent, FieldMapping
from omnisync.engine.plan_render import render_json, render_markdown, render_text
from omnisync.engine.report import PlanReport, PlanTally, plan_export
from omnisync.engine.results import ExportFailure, ReasonCount
from omnisync.engine.staging import stage_export
from omnisync.fingerprint import Fingerprinter
from omnisync.mapping import MappingPlan
from tests.staging.configs import make_config, make_export, write_customers, write_ledger

NOW = datetime(2026, 3, 1, tzinfo=UTC)
EXPORT = make_export(
    mapping=FieldMapping(email="email", first_name="first_name", city="city"),
    consent=Consent(status_column="email_status", changed_at_column="email_status_changed_at"),
    max_profiles=100,
)
COLUMNS = ("id", "email", "first_name", "city", "email_status", "email_status_changed_at")
ROWS = [
    # new and valid, with consent
    (1, "olena@example.com", "Олена", "Київ", "subscribed", "2024-05-01T09:30:00Z"),
    # new and valid, a status without a time: sent without a status, with a warning
    (2, "taras@example.com", "Тарас", "Львів", "yes", None),  # noqa: RUF001
    # new but invalid: malformed e-mail, over-long city
    (3, "not-an-email", "Nobody", "c" * 300, None, None),
    (4, None, "No Mail", None, None, None),
    (5, "OLENA@example.com", "Copy", None, None, None),
    # in the ledger: changed and valid / changed and invalid / unchanged / tag-only / renamed
    (6, "jonas@example.lt", "Jonas", "Vilnius", None, None),
    (7, "marta@example.pl", "Marta", "k" * 256, None, None),
    (8, "same@example.com", "Same", None, "subscribed", "2024-01-01"),
    (9, "untagged@example.com", "Untagged", None, None, None),
    (10, "renamed@example.com", "Renamed", None, None, None),
]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    source = tmp_path / "cdp.sqlite"
    write_customers(source, [dict(zip(COLUMNS, row, strict=True)) for row in ROWS], columns=COLUMNS)
    fingerprinter = Fingerprinter(EXPORT)

    def fp(row: tuple[object, ...]) -> int:
        return fingerprinter(*row[1:])

    write_ledger(
        tmp_path / "omnisync.sqlite3",
        [
            ("vip", "jonas@example.lt", 1, "vip"),
            ("vip", "marta@example.pl", 2, "vip"),
            ("vip", "same@example.com", fp(ROWS[7]), "vip"),
            ("vip", "untagged@example.com", fp(ROWS[8]), None),
            ("vip", "renamed@example.com", fp(ROWS[9]), "vip-old"),
            ("vip", "left@example.com", 3, "vip"),
            ("vip", "left-too@example.com", 4, "vip"),
        ],
    )
    return make_config(source_path=source, state_dir=tmp_path, exports=[EXPORT])


def test_the_report_counts_every_action_and_reason(config: Config) -> None:
    report = plan_export(config, "vip", now=NOW)
    assert (report.counts.rows, report.counts.members) == (10, 8)  # distinct e-mails
    # The one vocabulary: rows = members + invalid + duplicates, and every
    # member is to create, to update or unchanged.
    assert (report.rows, report.members, report.invalid, report.duplicates) == (10, 6, 3, 1)
    assert report.invalid == 3  # not-an-email, marta, the row without e-mail
    assert (report.to_create, report.to_update, report.unchanged) == (2, 1, 3)
    assert report.to_create + report.to_update + report.unchanged == report.members
    assert (report.to_tag, report.retag) == (4, 1)  # olena, taras, untagged, renamed
    assert (report.leaving, report.to_untag) == (2, 2)
    assert report.with_consent == 1
    assert report.invalid_reasons == (
        ReasonCount("city is longer than 128 characters", 2, ("n***l", "m***a@e***e.pl")),
        ReasonCount("e-mail must contain exactly one @", 1, ("n***l",)),
        ReasonCount("missing e-mail", 1, ("row 4",)),
    )
    assert report.warnings == (
        ReasonCount(
            "consent status without a parsable time; no status sent", 1, ("t***s@e***e.com",)
        ),
    )
    assert report.samples["new"] == ("o***a@e***e.com", "t***s@e***e.com")
    assert report.samples["changed"] == ("j***s@e***e.lt",)
    assert report.samples["untag"] == ("l***o@e***e.com", "l***t@e***e.com")  # by e-mail
    assert report.duplicates_sample == ("o***a@e***e.com",)
    assert not report.exceeds_max_profiles
    assert not report.changes_nothing


def test_the_tally_gives_the_runner_the_same_actions_the_plan_counts(config: Config) -> None:
    with stage_export(config, "vip") as staged:
        tally = PlanTally(staged)
        upserts = tags = 0
        for item in staged.work():
            outcome = MappingPlan(EXPORT).map_work(item, now=NOW)
            actions = tally.add(item, outcome)
            upserts += actions.upsert
            tags += actions.tag
        tally.add_leavers(staged.leavers())
        report = tally.report()
    assert report == plan_export(config, "vip", now=NOW)
    assert (upserts, tags) == (report.upserts, report.to_tag)


def test_max_profiles_exceeded_is_reported(config: Config) -> None:
    small = replace(config, exports={"vip": replace(EXPORT, max_profiles=5)})
    report = plan_export(small, "vip", now=NOW)
    assert report.exceeds_max_profiles
    assert "max_profiles EXCEEDED: 6 profiles (valid members) > 5" in render_text([report])


def all_renderings(report: PlanReport) -> list[str]:
    failure = [ExportFailure("news", "segment 'news' (source 'cdp'): missing table: ...")]
    return [
        render_text([report], failure),
        render_json([report], failure),
        render_markdown([report], failure),
    ]


def test_no_rendering_shows_a_full_email_address(config: Config) -> None:
    report = plan_export(config, "vip", now=NOW)
    for output in all_renderings(report):
        addresses = re.findall(r"[^\s,(]+@[^\s,)]+", output)
        assert addresses, "the renderings show masked samples"
        assert all("***" in address for address in addresses), addresses
        for _, email, *_ in ROWS:
            if isinstance(email, str) and "@" in email:
                assert email.lower() not in output.lower()


def test_text_rendering(config: Config) -> None:
    text = render_text([plan_export(config, "vip", now=NOW)], [ExportFailure("news", "boom")])
    # The connection's display name beside its key, on the plan's one line.
    assert "export 'vip' -> connection 'main' (Main), tag 'vip' (on leave: untag)" in text
    renamed = replace(config.connections["main"], display_name="Main\nshop")
    relabelled = replace(config, connections={"main": renamed})
    relabelled_text = render_text([plan_export(relabelled, "vip", now=NOW)])
    assert "export 'vip' -> connection 'main' (Main shop), tag 'vip'" in relabelled_text
    nameless = replace(config.connections["main"], display_name="main")
    plain = render_text([plan_export(replace(config, connections={"main": nameless}), "vip")])
    assert "export 'vip' -> connection 'main', tag 'vip'" in plain
    markdown = render_markdown([plan_export(relabelled, "vip", now=NOW)])
    assert "Connection `main` (Main shop), tag `vip`" in markdown
    assert (
        "segment 'vip' (source 'cdp'): 10 rows = 6 members + 3 invalid (never sent)"
        " + 1 duplicate" in text
    )
    assert re.search(r"to create\s+2\s+o\*\*\*a@e\*\*\*e\.com", text)
    assert re.search(r"to update\s+1\s+j\*\*\*s@e\*\*\*e\.lt", text)
    assert re.search(r"unchanged\s+3\n", text)
    assert re.search(r"to tag\s+4\s+1 also loses an old tag", text)
    assert re.search(r"leaving\s+2\s+l\*\*\*o@e\*\*\*e\.com", text)
    assert "no state store" not in text
    assert "not sent: 3 invalid rows" in text
    assert "1  missing e-mail  (e.g. row 4)" in text
    assert "consent: 1 new contact sent with the e-mail status recorded in the source" in text
    assert "max_profiles: 6 profiles (valid members) of at most 100" in text
    assert text.rstrip().endswith("export 'news': cannot plan: boom")


def test_json_rendering_is_complete_plain_data(config: Config) -> None:
    document = json.loads(
        render_json([plan_export(config, "vip", now=NOW)], [ExportFailure("n", "x")])
    )
    (plan,) = document["plans"]
    assert plan["export"] == "vip"
    assert plan["upserts"] == 3
    assert (plan["members"], plan["to_create"], plan["to_update"], plan["unchanged"]) == (
        6,
        2,
        1,
        3,
    )
    assert plan["state_found"] is True
    assert plan["counts"]["members"] == 8
    assert plan["invalid_reasons"][2] == {
        "reason": "missing e-mail",
        "count": 1,
        "examples": ["row 4"],
    }
    assert plan["exceeds_max_profiles"] is False
    assert document["failures"] == [{"export": "n", "message": "x"}]


def test_markdown_rendering_is_a_table(config: Config) -> None:
    markdown = render_markdown([plan_export(config, "vip", now=NOW)])
    assert markdown.startswith("### Export `vip`\n")
    assert "| | count | examples |" in markdown
    assert "| to create | 2 | o***a@e***e.com, t***s@e***e.com |" in markdown
    assert "| **not sent (invalid)** | 3 | |" in markdown


def test_an_unchanged_segment_says_nothing_to_send(config: Config) -> None:
    only_same = make_config(
        source_path=Path(config.sources["cdp"].path),
        state_dir=Path(config.daemon.state_dir),
        exports=[EXPORT],
        query="SELECT * FROM customers WHERE id = 8",
    )
    report = plan_export(only_same, "vip", now=NOW)
    assert report.changes_nothing is False  # the two leavers are still to be untagged
    keep = make_export(mapping=EXPORT.mapping, consent=EXPORT.consent, on_leave="keep")
    kept = plan_export(
        make_config(
            source_path=Path(config.sources["cdp"].path),
            state_dir=Path(config.daemon.state_dir),
            exports=[keep],
            query="SELECT * FROM customers WHERE id = 8",
        ),
        "vip",
        now=NOW,
    )
    assert kept.changes_nothing
    text = render_text([kept])
    assert "nothing to send" in text
    assert re.search(r"leaving\s+5\s+keep the tag \(on leave: keep\)", text)
    assert (kept.leaving, kept.to_untag) == (5, 0)
