"""Semantic rules: references, permissions, segments, tags, schedules, daemon settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnisync.config.model import (
    Config,
    Connection,
    DaemonSettings,
    Export,
    FieldMapping,
    SecretRef,
    User,
)
from omnisync.config.rules import export_permission_problems, select_problem, tag_problem
from tests.config.helpers import BASE, load_text, messages, replaced


def config_with(
    *, role: str = "contributor", allowed: tuple[str, ...] = (), accepted: bool = True
) -> Config:
    return Config(
        version=1,
        users={"olena": User("olena", "admin"), "marko": User("marko", role)},  # type: ignore[arg-type]
        sources={},
        segments={},
        connections={
            "main": Connection(
                name="main",
                display_name="Main",
                api_key=SecretRef("env", "KEY"),
                allowed_users=allowed,
                data_transfer_accepted=accepted,
            )
        },
        schedules={},
        exports={
            "vip": Export(
                name="vip",
                segment="vip",
                connection="main",
                owner="marko",
                mapping=FieldMapping(email="email"),
                tag="vip",
                enabled=False,
            )
        },
        daemon=DaemonSettings(state_dir="/var/lib/omnisync"),
    )


def test_permission_admins_always_and_contributors_when_listed() -> None:
    assert export_permission_problems(config_with(role="admin"), "vip") == ()
    assert export_permission_problems(config_with(allowed=("marko",)), "vip") == ()
    assert export_permission_problems(config_with(), "vip") == (
        "user 'marko' is a contributor and not in allowed_users of connection 'main';"
        " an admin must add them, or own the export",
    )


def test_permission_requires_data_transfer_acceptance_even_for_admins() -> None:
    assert export_permission_problems(config_with(role="admin", accepted=False), "vip") == (
        "connection 'main' has not accepted the data-transfer terms; an admin must set"
        " data_transfer_accepted: true before any export may use it",
    )


def test_permission_of_missing_things() -> None:
    config = config_with(role="admin")
    assert export_permission_problems(config, "nope") == ("there is no export 'nope'",)

    without_users = Config(**{**config.__dict__, "users": {}})
    assert export_permission_problems(without_users, "vip") == ("owner 'marko' is not a user",)

    without_connection = Config(**{**config.__dict__, "connections": {}})
    assert export_permission_problems(without_connection, "vip") == (
        "connection 'main' does not exist",
    )


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("vip", None),
        ("VIP customers 2026", None),
        ("клієнти", None),
        ("x" * 100, None),
        (" vip", "a tag must not start or end with whitespace"),
        ("vip\u00a0", "a tag must not start or end with whitespace"),
        ("vip,gold", "a tag must not contain a comma"),
        ("vip\tgold", "a tag must not contain control characters (tabs, line breaks, ...)"),
        ("vip\x85gold", "a tag must not contain control characters (tabs, line breaks, ...)"),
    ],
)
def test_tag_rule(tag: str, problem: str | None) -> None:
    assert tag_problem(tag) == problem


@pytest.mark.parametrize(
    ("tag", "problem"),
    [("''", "must not be empty"), ("x" * 101, "must be at most 100 characters, not 101")],
)
def test_the_schema_holds_a_tag_to_1_to_100_characters(
    tmp_path: Path, tag: str, problem: str
) -> None:
    result = load_text(tmp_path, f"{BASE}    tag: {tag}\n")

    assert messages(result) == [f"exports.vip.tag: {problem}"]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("SELECT email FROM customers", None),
        ("  -- members\n  select * from customers;  ", None),
        ("/* gold */ WITH g AS (SELECT 1) SELECT * FROM g", None),
        ("SELECT 'a;b' AS x, \"c;d\" FROM t -- ; not a statement", None),
        ("SELECT 'it''s; fine'", None),
        ("DELETE FROM customers", "the query must be a SELECT statement, not DELETE"),
        ("-- only a comment", "the query is empty"),
        (
            "SELECT 1; DROP TABLE customers",
            "the query must be a single statement (it has more than one ';'-separated part)",
        ),
    ],
)
def test_select_rule(query: str, problem: str | None) -> None:
    assert select_problem(query, dialect="postgres") == problem


def test_the_base_config_is_valid(tmp_path: Path) -> None:
    result = load_text(tmp_path, BASE)
    assert result.diagnostics == ()


def test_references_resolve_with_suggestions(tmp_path: Path) -> None:
    text = replaced("    segment: vip\n", "    segment: vip-customers\n")
    text = replaced("    owner: marko\n", "    owner: olenna\n    schedule: nigthly\n", text=text)
    text = replaced("    source: cdp\n", "    source: cdb\n", text=text)
    text += "schedules:\n  nightly: {cron: '0 3 * * *'}\n"

    assert messages(load_text(tmp_path, text)) == [
        "segments.vip.source: there is no source 'cdb' (did you mean 'cdp'?)",
        "exports.vip.segment: there is no segment 'vip-customers'",
        "exports.vip.owner: there is no user 'olenna' (did you mean 'olena'?)",
        "exports.vip.schedule: there is no schedule 'nigthly' (did you mean 'nightly'?)",
    ]


def test_an_entry_that_failed_the_schema_still_counts_as_defined(tmp_path: Path) -> None:
    # The connection is broken, but it exists: the export's reference to it is not
    # reported as unknown, only the connection's own problem is.
    text = replaced(
        "    data_transfer_accepted: true\n", "    data_transfer_accepted: true\n    colour: red\n"
    )

    assert messages(load_text(tmp_path, text)) == [
        "connections.main.colour: unknown property 'colour'"
    ]


def test_both_permission_rules_at_once(tmp_path: Path) -> None:
    text = replaced("    allowed_users: [marko]\n    data_transfer_accepted: true\n", "")

    assert messages(load_text(tmp_path, text)) == [
        "exports.vip.connection: connection 'main' has not accepted the data-transfer terms;"
        " an admin must set data_transfer_accepted: true before any export may use it",
        "exports.vip.owner: user 'marko' is a contributor and not in allowed_users of connection"
        " 'main'; an admin must add them, or own the export",
    ]


def test_an_unused_connection_without_acceptance_is_fine(tmp_path: Path) -> None:
    text = BASE + "  # nothing uses it\n"
    text = replaced(
        "exports:\n",
        "  spare:\n    api_key: {file: key.txt}\nexports:\n",
        text=text,
    )
    assert load_text(tmp_path, text).diagnostics == ()


def test_two_exports_may_not_manage_one_tag_on_one_connection(tmp_path: Path) -> None:
    second = (
        "  vip-again:\n    segment: vip\n    connection: main\n    owner: olena\n"
        "    mapping: {email: email}\n"
    )
    # The tag defaults to the segment name, so both manage "vip".
    assert messages(load_text(tmp_path, BASE + second)) == [
        "exports.vip-again.tag: tag 'vip' on connection 'main' is already managed by export 'vip'"
        " (line 21, column 3); give one of them another tag"
    ]
    assert load_text(tmp_path, BASE + second + "    tag: vip-2\n").diagnostics == ()


def test_the_same_tag_on_another_connection_is_fine(tmp_path: Path) -> None:
    text = replaced(
        "exports:\n",
        "  other:\n    api_key: {env: OTHER_KEY}\n    data_transfer_accepted: true\nexports:\n",
    )
    text += (
        "  vip-other:\n    segment: vip\n    connection: other\n    owner: olena\n"
        "    mapping: {email: email}\n"
    )
    assert load_text(tmp_path, text).diagnostics == ()


def test_segments_of_file_and_database_sources(tmp_path: Path) -> None:
    text = replaced("  cdp:\n", "  people:\n    kind: jsonl\n    path: people.jsonl\n  cdp:\n")
    text = replaced(
        "connections:\n",
        "  everyone:\n    source: people\n  broken:\n    source: people\n    query: SELECT 1\n"
        "  nothing:\n    source: cdp\nconnections:\n",
        text=text,
    )
    assert messages(load_text(tmp_path, text)) == [
        "segments.broken.query: a jsonl source takes no query: every row of the file is a member",
        "segments.nothing: a segment of a sqlite source needs a 'query' (a SQL SELECT)",
    ]


def test_schedules_cron_timezone_and_interval(tmp_path: Path) -> None:
    text = BASE + (
        "schedules:\n"
        "  weekdays: {cron: '0 9 * * 1-5', timezone: Europe/Kyiv}\n"
        "  daily: {cron: '@daily'}\n"
        "  both-days: {cron: '0 0 1 * mon'}\n"
        "  nowhere: {cron: '0 0 * * *', timezone: Mars/Olympus}\n"
        "  short: {every: 1500ms}\n"
        "  long: {every: 400d}\n"
        "  undefined: {every: .nan}\n"
        "  fine: {every: 90}\n"
    )
    assert messages(load_text(tmp_path, text)) == [
        "schedules.both-days.cron: invalid cron expression: restrict either the day of month or"
        " the day of week, not both (crontab runs when either matches, which omnisync does not"
        " reproduce)",
        "schedules.nowhere.timezone: unknown time zone 'Mars/Olympus'",
        "schedules.short.every: must be a whole number of seconds",
        "schedules.long.every: must be at most 366 days",
        "schedules.undefined.every: must be a duration such as 15m or 30s, not .nan",
    ]


def test_csv_encoding_and_base_url(tmp_path: Path) -> None:
    text = replaced(
        "  cdp:\n",
        "  file:\n    kind: csv\n    path: x.csv\n    encoding: cp1251\n"
        "    delimiter: ';'\n  cdp:\n",
    )
    text = replaced(
        "    data_transfer_accepted: true\n",
        "    data_transfer_accepted: true\n    base_url: https://user:pw@example.com/api\n",
        text=text,
    )
    assert messages(load_text(tmp_path, text)) == [
        "connections.main.base_url: must not contain credentials; the API key is given by api_key"
    ]


@pytest.mark.parametrize("encoding", ["base64", "hex", "rot13", "zlib", "uu"])
def test_a_csv_encoding_is_a_text_encoding_not_any_codec(tmp_path: Path, encoding: str) -> None:
    text = replaced(
        "  cdp:\n", f"  file:\n    kind: csv\n    path: x.csv\n    encoding: {encoding}\n  cdp:\n"
    )
    assert messages(load_text(tmp_path, text)) == [
        f"sources.file.encoding: '{encoding}' is not a text encoding (such as utf-8 or cp1252)"
    ]


@pytest.mark.parametrize("delimiter", ["'\"'", '"\\n"', '"\\r"'])
def test_a_csv_delimiter_is_not_the_quote_character_or_a_line_break(
    tmp_path: Path, delimiter: str
) -> None:
    text = replaced(
        "  cdp:\n", f"  file:\n    kind: csv\n    path: x.csv\n    delimiter: {delimiter}\n  cdp:\n"
    )
    assert messages(load_text(tmp_path, text)) == [
        "sources.file.delimiter: one character other than a double quote or a line break"
    ]


@pytest.mark.parametrize(
    ("control", "problem"),
    [
        ("{listen: '127.0.0.1:9187'}", None),
        ("{listen: 'localhost:0'}", None),
        ("{listen: '[::1]:9187'}", None),
        ("{listen: '127.0.0.2:80'}", None),
        ("{listen: '0.0.0.0:9187', token: {env: T}}", None),
        ("{listen: 'example.com:9187', token: {file: /etc/token}}", None),
        (
            "{listen: '0.0.0.0:9187'}",
            "daemon.control.listen: listening on '0.0.0.0' exposes the control endpoint beyond"
            " this machine; set daemon.control.token, or listen on 127.0.0.1",
        ),
        (
            "{listen: '127.0.0.1:70000'}",
            "daemon.control.listen: port must be a number from 0 to 65535, not '70000'",
        ),
        (
            "{listen: 'not_a host!:80'}",
            "daemon.control.listen: host:port, such as 127.0.0.1:9187",
        ),
        (
            "{listen: 'bad_host:80'}",
            "daemon.control.listen: 'bad_host' is neither an IP address nor a host name",
        ),
    ],
)
def test_control_listen_address(tmp_path: Path, control: str, problem: str | None) -> None:
    result = load_text(tmp_path, BASE + f"daemon:\n  control: {control}\n")
    assert messages(result) == ([problem] if problem else [])
