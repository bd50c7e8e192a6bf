"""``omnisync plan``: the real command on real files, exit codes and outputs.

The first run of each exit code is a process of its own (:func:`run_plan`); the formats
and options after them run through the entry point in this process (:func:`plan_here`),
as ``export run`` never does.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from omnisync.cli.main import main
from omnisync.config.loader import load_config
from omnisync.engine.report import plan_export
from omnisync.engine.staging import stage_export
from tests.cli import run_cli, run_cli_here
from tests.staging.configs import write_customers, write_ledger

CONFIG = """\
version: 1
users:
  olena: {{role: admin}}
sources:
  cdp: {{kind: sqlite, path: {source}}}
segments:
  gold:
    source: cdp
    query: |
      SELECT id, email, first_name, country FROM customers
      WHERE id <= 5  -- the first five
  broken:
    source: cdp
    query: SELECT email FROM clients
connections:
  main:
    kind: omnisend
    display_name: Main store
    api_key: {{env: OMNISYNC_TEST_KEY_THAT_IS_NEVER_SET}}
    data_transfer_accepted: true
exports:
  vip:
    segment: gold
    connection: main
    owner: olena
    mapping: {{email: email, first_name: first_name, country: country}}
  news:
    segment: broken
    connection: main
    owner: olena
    mapping: {{email: email}}
daemon:
  state_dir: {state}
"""

PEOPLE = [
    {"id": 1, "email": "olena.kovalenko@example.com", "first_name": "Олена", "country": "Україна"},
    {"id": 2, "email": "jonas@example.lt", "first_name": "Jonas", "country": "Lithuania"},
    {"id": 3, "email": "not-an-email", "first_name": "Nobody", "country": None},
    {"id": 4, "email": "Jonas@Example.LT", "first_name": "Copy", "country": None},
    {"id": 5, "email": None, "first_name": "No mail", "country": None},
]


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    source = tmp_path / "cdp.sqlite"
    write_customers(source, PEOPLE, columns=("id", "email", "first_name", "country"))
    path = tmp_path / "omnisync.yaml"
    path.write_text(CONFIG.format(source=source, state=tmp_path / "state"), encoding="utf-8")
    return path


def run_plan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("plan", *args, extra_env=env, timeout=60)


def plan_here(*args: str) -> subprocess.CompletedProcess[str]:
    """:func:`run_plan` through the command's entry point in this process."""
    return run_cli_here("plan", *args)


def test_plan_one_export_as_a_real_process(config_path: Path, tmp_path: Path) -> None:
    result = run_plan("vip", "--config", str(config_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert "export 'vip' -> connection 'main' (Main store), tag 'gold' (on leave: untag)" in out
    assert "5 rows = 2 members + 2 invalid (never sent) + 1 duplicate" in out
    assert re.search(r"to create\s+2\s", out)
    assert re.search(r"to tag\s+2\s", out)
    assert "e-mail must contain exactly one @" in out
    assert "olena.kovalenko@example.com" not in out
    assert "Traceback" not in out + result.stderr
    # It changed nothing: no state directory was made.
    assert not (tmp_path / "state").exists()


def test_plan_json_counts_match_the_segment(config_path: Path) -> None:
    result = plan_here("vip", "--config", str(config_path), "--format", "json")
    assert result.returncode == 0, result.stderr
    (plan,) = json.loads(result.stdout)["plans"]
    assert (plan["to_create"], plan["to_tag"], plan["invalid"]) == (2, 2, 2)
    assert plan["duplicates"] == plan["counts"]["duplicates"] == 1
    assert plan["tag_name"] == "gold"


def test_config_from_the_environment_and_a_failing_source(config_path: Path) -> None:
    result = run_plan("--format", "markdown", env={"OMNISYNC_CONFIG": str(config_path)})
    assert result.returncode == 1
    assert "### Export `vip`" in result.stdout
    assert "### Export `news`\n\n**Cannot plan:**" in result.stdout
    assert (
        "omnisync plan: export 'news': segment 'broken' (source 'cdp'): missing table"
        in result.stderr
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_unknown_exports_are_a_usage_error(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "vip", "gold", "--config", str(config_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no export 'gold' in the config (exports: news, vip)" in captured.err


def test_an_invalid_config_prints_diagnostics_like_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nexports:\n  vip:\n    segmnt: gold\n", encoding="utf-8")
    assert main(["plan", "--config", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}:4:5: exports.vip" in captured.err


def test_a_config_path_that_does_not_exist_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_a_bad_format_is_a_usage_error(config_path: Path) -> None:
    result = run_plan("--format", "xml", "--config", str(config_path))
    assert result.returncode == 2
    assert "invalid choice: 'xml'" in result.stderr


def test_plan_reads_the_ledger_the_runner_writes(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(config_path, environ={})
    assert plan_export(config, "vip").to_create == 2
    with stage_export(config, "vip") as staged:
        delivered = {item.email: item.fingerprint for item in staged.work()}
    state = tmp_path / "state"
    state.mkdir()
    # As a run leaves it: both valid members delivered, the tag on one of them.
    write_ledger(
        state / "omnisync.sqlite3",
        [
            (
                "vip",
                "olena.kovalenko@example.com",
                delivered["olena.kovalenko@example.com"],
                "gold",
            ),
            ("vip", "jonas@example.lt", delivered["jonas@example.lt"], None),
            ("vip", "left@example.com", 1, "gold"),
        ],
    )
    assert main(["plan", "vip", "--config", str(config_path), "--format", "json"]) == 0
    (plan,) = json.loads(capsys.readouterr().out)["plans"]
    # Both members' contacts are as delivered; one of them still needs the tag.
    assert (plan["to_create"], plan["unchanged"], plan["to_tag"], plan["to_untag"]) == (0, 2, 1, 1)
    assert plan["state_found"] is True
    assert plan["invalid"] == 2  # the malformed address and the row without one, again


def _unusable_state(state: Path, kind: str) -> None:
    state.mkdir(exist_ok=True)
    database = state / "omnisync.sqlite3"
    if kind == "a directory":
        database.mkdir()
    else:
        with closing(sqlite3.connect(database)) as connection:
            connection.execute("PRAGMA user_version = 999")
            connection.commit()


@pytest.mark.parametrize("kind", ["a directory", "a newer schema"])
def test_plan_refuses_a_state_database_that_a_run_refuses_with_its_words(
    config_path: Path, tmp_path: Path, kind: str
) -> None:
    _unusable_state(tmp_path / "state", kind)
    plan = plan_here("vip", "--config", str(config_path), "--format", "json")
    run = run_cli("export", "run", "vip", "--config", str(config_path))
    assert plan.returncode == run.returncode == 1, (plan.stderr, run.stderr)
    refusal = run.stderr.strip().removeprefix("omnisync export run: ")
    assert ("state database" in refusal) and (str(tmp_path / "state") in refusal)
    assert refusal in plan.stderr
    assert json.loads(plan.stdout)["failures"] == [{"export": "vip", "message": refusal}]
    # Nothing counted as if the ledger were empty or complete.
    assert json.loads(plan.stdout)["plans"] == []


def test_plan_without_a_state_store_says_so_in_every_format(config_path: Path) -> None:
    text = plan_here("vip", "--config", str(config_path))
    markdown = plan_here("vip", "--config", str(config_path), "--format", "markdown")
    as_json = plan_here("vip", "--config", str(config_path), "--format", "json")
    assert text.returncode == markdown.returncode == as_json.returncode == 0
    assert "WARNING: no state store found" in text.stdout
    assert re.search(r"to create\s+2\s+\(no state: upper bound\)", text.stdout)
    assert "> [!WARNING]\n> no state store found" in markdown.stdout
    assert "| to create | 2 | (no state: upper bound)" in markdown.stdout
    (plan,) = json.loads(as_json.stdout)["plans"]
    assert plan["state_found"] is False

    required = plan_here("vip", "--config", str(config_path), "--require-state")
    assert required.returncode == 1
    assert "no state store at" in required.stderr and "--require-state" in required.stderr
    assert "to create" not in required.stdout


def test_plan_explain_and_drift_mask_an_e_mail_in_any_error(
    config_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Whatever path an address takes into an error, the commands print it masked, in every
    # format, as export run and history do.
    from omnisync.errors import OmnisyncError
    from omnisync.sources.errors import SourceError

    def leaky(*args: object, **options: object) -> None:
        raise SourceError("row olena.kovalenko@example.com", segment="gold", source="cdp")

    def leaky_store(*args: object, **options: object) -> None:
        raise OmnisyncError("row olena.kovalenko@example.com")

    monkeypatch.setattr("omnisync.cli.plan.plan_export", leaky)
    monkeypatch.setattr("omnisync.engine.explain.explain_email", leaky)
    monkeypatch.setattr("omnisync.cli.drift.open_existing_store", leaky_store)
    for command in (
        *(["plan", "vip", "--format", form] for form in ("text", "json", "markdown")),
        *(["explain", "jonas@example.lt", "--format", form] for form in ("text", "json")),
        ["drift", "vip"],
    ):
        assert main([*command, "--config", str(config_path)]) == 1
        captured = capsys.readouterr()
        assert "o***o@e***e.com" in captured.err, command
        assert "olena.kovalenko@example.com" not in captured.out + captured.err, command
