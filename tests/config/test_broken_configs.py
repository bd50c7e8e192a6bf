"""Every broken config under tests/fixtures/config/broken yields exactly the expected
diagnostics, at the expected file:line:col and path, through the loader and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from omnisync.cli.main import main
from omnisync.config.loader import try_load_config

REPOSITORY = Path(__file__).resolve().parent.parent.parent
BROKEN = REPOSITORY / "tests" / "fixtures" / "config" / "broken"
ENVIRON = {"HOME": "/home/tester"}

# fixture -> every diagnostic expected, in order: (file, line, column, path, part of message).
# ``file`` is relative to the fixture directory.
EXPECTED: dict[str, list[tuple[str, int, int, str, str]]] = {
    "alias-bomb.yaml": [("alias-bomb.yaml", 7, 8, "", "alias *e expands the document past")],
    "bad-custom-property-name.yaml": [
        (
            "bad-custom-property-name.yaml",
            28,
            9,
            "exports.vip.mapping.custom_properties.loyalty-tier",
            "custom property names are 1 to 128 letters, digits and '_'",
        )
    ],
    "bad-export-name.yaml": [
        ("bad-export-name.yaml", 21, 3, "exports.VIP Customers", "names are 1 to 63 lowercase")
    ],
    "base-url-not-http.yaml": [
        ("base-url-not-http.yaml", 20, 5, "connections.main.base_url", "http:// or https://")
    ],
    "comments-only.yaml": [("comments-only.yaml", 1, 1, "", "no YAML document")],
    "contributor-not-allowed.yaml": [
        (
            "contributor-not-allowed.yaml",
            24,
            5,
            "exports.vip.owner",
            "user 'marko' is a contributor and not in allowed_users of connection 'main'",
        )
    ],
    "control-public-without-token.yaml": [
        (
            "control-public-without-token.yaml",
            29,
            5,
            "daemon.control.listen",
            "set daemon.control.token",
        )
    ],
    "cron-and-every.yaml": [
        ("cron-and-every.yaml", 27, 5, "exports.vip.schedule", "either 'cron'")
    ],
    "cron-four-fields.yaml": [
        ("cron-four-fields.yaml", 28, 7, "exports.vip.schedule.cron", "five fields")
    ],
    "csv-with-query.yaml": [
        ("csv-with-query.yaml", 14, 5, "segments.vip.query", "a csv source takes no query")
    ],
    "data-transfer-missing.yaml": [
        (
            "data-transfer-missing.yaml",
            22,
            5,
            "exports.vip.connection",
            "connection 'main' has not accepted the data-transfer terms",
        )
    ],
    "dir-duplicate-export": [
        (
            "30-vip-again.yaml",
            4,
            3,
            "exports.vip",
            "export 'vip' is defined twice: at {dir}/20-vip.yaml:3:3"
            " and at {dir}/30-vip-again.yaml:4:3",
        )
    ],
    "dir-errors-in-two-files": [
        ("a.yaml", 4, 5, "users.olena.role", "'owner' is not one of: admin, contributor"),
        ("a.yaml", 18, 5, "connections.other.api_key", "never the secret itself"),
        ("b.yaml", 4, 5, "exports.vip.segment", "there is no segment 'vipp' (did you mean 'vip'?)"),
    ],
    "dir-no-yaml": [(".", 1, 1, "", "no *.yaml or *.yml files")],
    "dir-two-daemons": [
        (
            "daemon.yaml",
            2,
            1,
            "daemon",
            "daemon settings are given twice: at {dir}/base.yaml:17:1 and at {dir}/daemon.yaml:2:1",
        )
    ],
    "duplicate-key.yaml": [
        (
            "duplicate-key.yaml",
            25,
            5,
            "exports.vip.segment",
            "duplicate key 'segment': first at line 22, column 5, again at line 25, column 5",
        )
    ],
    "duplicate-tag.yaml": [
        (
            "duplicate-tag.yaml",
            32,
            5,
            "exports.vip-copy.tag",
            "tag 'vip' on connection 'main' is already managed by export 'vip' (line 27, column 5)",
        )
    ],
    "empty.yaml": [("empty.yaml", 1, 1, "", "file is empty")],
    "every-not-a-duration.yaml": [
        ("every-not-a-duration.yaml", 28, 7, "exports.vip.schedule.every", "a duration such as")
    ],
    "every-zero.yaml": [
        ("every-zero.yaml", 28, 7, "exports.vip.schedule.every", "at least 1 second")
    ],
    "invalid-cron.yaml": [
        ("invalid-cron.yaml", 28, 7, "exports.vip.schedule.cron", "higher than the maximum")
    ],
    "invalid-utf8.yaml": [("invalid-utf8.yaml", 3, 5, "", "not valid UTF-8: byte 0xe9")],
    "log-format.yaml": [
        ("log-format.yaml", 28, 3, "daemon.log_format", "'xml' is not one of: json, text")
    ],
    "max-profiles-zero.yaml": [
        ("max-profiles-zero.yaml", 27, 5, "exports.vip.max_profiles", "must be at least 1")
    ],
    "missing-email.yaml": [
        ("missing-email.yaml", 25, 5, "exports.vip.mapping", "missing required property 'email'")
    ],
    "missing-version.yaml": [
        ("missing-version.yaml", 1, 1, "", "missing required property 'version'")
    ],
    "multiple-documents.yaml": [("multiple-documents.yaml", 27, 1, "", "a second one starts here")],
    "no-data-transfer.yaml": [
        (
            "no-data-transfer.yaml",
            23,
            5,
            "exports.vip.connection",
            "data_transfer_accepted: true",
        )
    ],
    "nul-character.yaml": [("nul-character.yaml", 14, 24, "", "U+0000 is not allowed")],
    "plaintext-api-key.yaml": [
        (
            "plaintext-api-key.yaml",
            17,
            5,
            "connections.main.api_key",
            "use {env: OMNISEND_API_KEY}, {file: /path} or {credential: NAME}",
        )
    ],
    "python-tag.yaml": [
        (
            "python-tag.yaml",
            26,
            14,
            "exports.vip.mapping.email",
            "YAML tag '!!python/object/apply:os.system' is not allowed",
        )
    ],
    "query-not-select.yaml": [
        ("query-not-select.yaml", 14, 5, "segments.vip.query", "must be a SELECT statement")
    ],
    "recursive-alias.yaml": [
        ("recursive-alias.yaml", 27, 17, "", "alias *loop refers to a node that contains it")
    ],
    "secret-two-kinds.yaml": [
        (
            "secret-two-kinds.yaml",
            17,
            5,
            "connections.main.api_key",
            "give only one of env, file or credential",
        )
    ],
    "sqlite-without-query.yaml": [
        ("sqlite-without-query.yaml", 12, 3, "segments.vip", "needs a 'query'")
    ],
    "syntax-error.yaml": [("syntax-error.yaml", 5, 8, "", "invalid YAML: expected ',' or ']'")],
    "tag-too-long.yaml": [
        ("tag-too-long.yaml", 27, 5, "exports.vip.tag", "at most 100 characters, not 101")
    ],
    "tag-with-comma.yaml": [
        ("tag-with-comma.yaml", 27, 5, "exports.vip.tag", "must not contain a comma")
    ],
    "timezone-without-cron.yaml": [
        (
            "timezone-without-cron.yaml",
            27,
            5,
            "exports.vip.schedule",
            "'timezone' applies only to a 'cron' schedule",
        )
    ],
    "too-many-custom-properties.yaml": [
        (
            "too-many-custom-properties.yaml",
            27,
            7,
            "exports.vip.mapping.custom_properties",
            "at most 200 entries, not 201",
        )
    ],
    "top-level-list.yaml": [("top-level-list.yaml", 1, 1, "", "top level must be a mapping")],
    "typo-key.yaml": [
        (
            "typo-key.yaml",
            27,
            5,
            "exports.vip.on_leve",
            "unknown property 'on_leve' (did you mean 'on_leave'?)",
        )
    ],
    "unknown-allowed-user.yaml": [
        (
            "unknown-allowed-user.yaml",
            18,
            28,
            "connections.main.allowed_users.1",
            "there is no user 'ivan'",
        )
    ],
    "unknown-connection.yaml": [
        (
            "unknown-connection.yaml",
            23,
            5,
            "exports.vip.connection",
            "there is no connection 'main-store'",
        )
    ],
    "unknown-csv-encoding.yaml": [
        ("unknown-csv-encoding.yaml", 11, 5, "sources.cdp.encoding", "unknown text encoding")
    ],
    "unknown-owner.yaml": [
        ("unknown-owner.yaml", 24, 5, "exports.vip.owner", "there is no user 'petro'")
    ],
    "unknown-schedule.yaml": [
        ("unknown-schedule.yaml", 27, 5, "exports.vip.schedule", "there is no schedule 'hourly'")
    ],
    "unknown-section.yaml": [
        ("unknown-section.yaml", 27, 1, "exprots", "(did you mean 'exports'?)")
    ],
    "unknown-segment.yaml": [
        (
            "unknown-segment.yaml",
            22,
            5,
            "exports.vip.segment",
            "there is no segment 'vip-customers'",
        )
    ],
    "unknown-source-kind.yaml": [
        (
            "unknown-source-kind.yaml",
            9,
            5,
            "sources.cdp.kind",
            "unknown kind 'mysql'; expected one of: sqlite, csv, jsonl, postgres",
        )
    ],
    "unknown-source.yaml": [
        ("unknown-source.yaml", 13, 5, "segments.vip.source", "there is no source 'crm'")
    ],
    "unknown-timezone.yaml": [
        (
            "unknown-timezone.yaml",
            31,
            5,
            "schedules.nightly.timezone",
            "unknown time zone 'Europe/Kyyiv' (did you mean 'Europe/Kyiv'?)",
        )
    ],
    "utf16.yaml": [("utf16.yaml", 1, 1, "", "UTF-16")],
    "wrong-version.yaml": [("wrong-version.yaml", 1, 1, "version", "must be 1")],
}


def fixture_names() -> list[str]:
    return sorted(path.name for path in BROKEN.iterdir())


def test_every_fixture_has_its_expectations_and_there_are_at_least_30() -> None:
    assert fixture_names() == sorted(EXPECTED)
    assert len(EXPECTED) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loader_reports_exactly_the_expected_diagnostics(name: str) -> None:
    fixture = BROKEN / name
    result = try_load_config(fixture, environ=ENVIRON)

    assert result.config is None
    directory = fixture if fixture.is_dir() else BROKEN
    found = [
        (
            os.path.relpath(diagnostic.file, directory),
            diagnostic.line,
            diagnostic.column,
            diagnostic.path,
        )
        for diagnostic in result.diagnostics
    ]
    expected = EXPECTED[name]
    assert found == [(file, line, column, path) for file, line, column, path, _ in expected]
    for diagnostic, (*_, fragment) in zip(result.diagnostics, expected, strict=True):
        assert fragment.replace("{dir}", str(directory)) in diagnostic.message


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cli_exits_1_with_the_diagnostics_and_no_traceback(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(BROKEN)
    status = main(["validate", name])
    output = capsys.readouterr()

    assert status == 1
    assert "Traceback" not in output.out + output.err
    file, line, column, path, _ = EXPECTED[name][0]
    shown = os.path.normpath(os.path.join(name, file)) if (BROKEN / name).is_dir() else file
    where = f"{shown}:{line}:{column}: {path + ': ' if path else ''}"
    assert output.out.startswith(where)
    assert len(output.out.splitlines()) == len(EXPECTED[name])
    assert "error" in output.err


@pytest.mark.parametrize(
    "name",
    [
        "plaintext-api-key.yaml",
        "alias-bomb.yaml",
        "invalid-utf8.yaml",
        "empty.yaml",
        "dir-errors-in-two-files",
        "python-tag.yaml",
    ],
)
def test_real_cli_process_reports_without_traceback(name: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "omnisync", "validate", name],
        cwd=BROKEN,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        check=False,
    )

    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr
    assert len(completed.stdout.splitlines()) == len(EXPECTED[name])
    # The plaintext key of plaintext-api-key.yaml is never echoed.
    assert "sk-live-9f8e7d6c5b4a" not in completed.stdout + completed.stderr


def test_summary_counts_errors_and_files(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["validate", str(BROKEN / "dir-errors-in-two-files")])

    assert status == 1
    assert capsys.readouterr().err.strip() == "3 errors in 2 files"
