"""Each effect of `omnisync diff` from a one-line change, in every format, and the command.

The command runs through its entry point in this process (:mod:`tests.review.reviewing`),
but for the first run of each exit status, the colour on a terminal and the secrets (read
from the real environment), which run it as a process of its own.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.review.repository import ConfigRepository, git, make_repository
from tests.review.reviewing import (
    Diff,
    as_github,
    as_json,
    as_markdown,
    as_text,
    diff_here,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@dataclass(frozen=True)
class Case:
    code: str
    risk: str
    name: str  # the object that carries the effect
    old: str  # the line changed
    new: str  # its replacement ("" removes it)
    on_line: bool = True  # the annotation is on the changed line
    says: str = ""  # and the message says this


RETIRED = (
    "retired: {segment: everyone, connection: main, owner: olena, tag: old,"
    " mapping: {email: email}}"
)
ADDED = RETIRED.replace("retired", "added")  # the same brand and tag: a rename

CASES = (
    Case("first_export", "warning", "paused", "enabled: false", "enabled: true"),
    Case(
        "first_export",
        "warning",
        "added",
        RETIRED,
        ADDED.replace("tag: old", "tag: new").replace("segment: everyone", "segment: vip"),
    ),
    Case("export_renamed", "danger", "added", RETIRED, ADDED, says="'retired'"),
    # The same segment to the same brand under a new tag: its members are sent again too.
    Case(
        "export_renamed",
        "danger",
        "added",
        RETIRED,
        ADDED.replace("tag: old", "tag: new"),
        says="renames export 'retired'",
    ),
    Case("resend_all_members", "warning", "vip", "last_name: last_name", "last_name: surname"),
    Case("retag_all_members", "warning", "vip", "tag: vip", "tag: vip-gold", says="'vip-gold'"),
    Case("untag_on_leave_changed", "warning", "vip", "on_leave: keep", "on_leave: untag"),
    Case(
        "welcome_messages_enabled",
        "danger",
        "vip",
        "send_welcome_message: false",
        "send_welcome_message: true",
    ),
    Case("consent_changed", "warning", "vip", "source: signup-form", "source: checkout"),
    Case("moves_brand", "danger", "vip", "connection: main", "connection: second"),
    Case(
        "membership_may_change",
        "warning",
        "vip",
        "query: SELECT id, email, first_name, last_name, status, status_at FROM people",
        "query: SELECT id, email, first_name, last_name, status, status_at FROM people LIMIT 9",
        on_line=False,  # the export's `segment:` line carries it
    ),
    Case(
        "export_removed",
        "warning",
        "retired",
        RETIRED,
        "",
        says="keep tag 'old'",
    ),
    Case("export_disabled", "warning", "vip", "send_welcome_message: false", "enabled: false"),
    Case(
        "guards_loosened",
        "warning",
        "vip",
        "send_welcome_message: false",
        "guards: {max_removed: 100%, allow_empty: true}",
        says="max_removed 20% → 100%, allow_empty false → true",
    ),
    Case("schedule_changed", "info", "vip", "every: 15m", "every: 1h", says="96/day → 24/day"),
    Case(
        "schedule_changed",
        "info",
        "paused",
        'cron: "0 * * * *"',
        'cron: "0 9 * * 1-5"',
        on_line=False,  # a named schedule: the export's `schedule:` line
        says="24/day → 0.71/day",
    ),
    Case(
        "permission_granted",
        "warning",
        "main",
        "allowed_users: [marko]",
        "allowed_users: [marko, ivan]",
        on_line=False,  # two connections have that line; the first is main's
    ),
    Case(
        "permission_granted",
        "warning",
        "marko",
        "marko: {role: contributor}",
        "marko: {role: admin}",
    ),
    Case("permission_revoked", "info", "ivan", "ivan: {role: admin}", "ivan: {role: contributor}"),
    Case(
        "data_transfer_acceptance_changed",
        "warning",
        "spare",
        "data_transfer_accepted: false",
        "data_transfer_accepted: true",
    ),
)

LEVELS = {"danger": "error", "warning": "warning", "info": "notice"}


@pytest.fixture
def repository(tmp_path: Path) -> ConfigRepository:
    return make_repository(tmp_path / "configs")


def _review(repository: ConfigRepository) -> Diff:
    """``omnisync diff --base HEAD`` of the repository's working tree, in this process."""
    state_dir = str(repository.root / "no-state")
    return Diff(("--config", str(repository.path), "--state-dir", state_dir, "--base", "HEAD"))


def _here(repository: ConfigRepository, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``omnisync diff`` on the repository's config in this process, as ``repository.diff``
    runs it."""
    return diff_here(
        "--config",
        str(repository.path),
        "--state-dir",
        str(repository.root / "no-state"),
        *arguments,
    )


def _edit(repository: ConfigRepository, case: Case) -> int:
    if case.code == "permission_granted" and case.name == "main":
        lines = repository.path.read_text().splitlines()
        index = lines.index("    allowed_users: [marko]")
        lines[index] = "    allowed_users: [marko, ivan]"
        repository.path.write_text("\n".join(lines) + "\n")
        return index + 1
    return repository.edit(case.old, case.new)


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.code}-{case.name}")
def test_a_one_line_change_has_its_effect_in_every_format(repository, case):
    line = _edit(repository, case)
    review = _review(repository)

    text = as_text(review)
    effect_lines = [row for row in text.splitlines() if f"{case.risk} {case.code}:" in row]
    assert effect_lines, text
    assert case.says in "\n".join(effect_lines)

    document = as_json(review)
    found = [
        (change, effect)
        for change in document["changes"]
        for effect in change["effects"]
        if effect["code"] == case.code and change["name"] == case.name
    ]
    assert len(found) == 1, document
    change, effect = found[0]
    assert effect["risk"] == case.risk
    assert change["approvers"], change
    assert set(effect) >= {"code", "risk", "message", "requests", "minutes"}

    markdown = as_markdown(review)
    rows = [row for row in markdown.splitlines() if row.startswith("|") and f"`{case.name}`" in row]
    assert any(f"`{case.code}`" in row for row in rows), markdown

    github = as_github(review)
    level = LEVELS[case.risk]
    annotations = re.findall(
        rf"^::{level} file=([^,]+),line=(\d+),title=omnisync diff%3A {case.code}::(.*)$",
        github,
        flags=re.MULTILINE,
    )
    assert annotations, github
    assert all(file.endswith("omnisync.yaml") for file, _, _ in annotations)
    if case.on_line and case.new:
        assert str(line) in [number for _, number, _ in annotations], (line, github)


def test_approvers_are_the_owner_of_an_export_and_the_admins_for_permissions(repository):
    repository.edit("tag: vip", "tag: vip-gold")
    repository.edit("ivan: {role: admin}", "ivan: {role: contributor}")
    document = as_json(_review(repository))
    approvers = {change["name"]: change["approvers"] for change in document["changes"]}
    assert approvers["vip"] == ["marko"]
    assert approvers["ivan"] == ["ivan", "olena"]  # the admins before the change
    assert document["summary"]["approvers"] == ["ivan", "marko", "olena"]


def test_a_contributor_who_makes_himself_admin_is_approved_by_the_admins_before(repository):
    repository.edit("marko: {role: contributor}", "marko: {role: admin}")
    repository.edit("ivan: {role: admin}", "ivan: {role: contributor}")
    document = as_json(_review(repository))
    approvers = {change["name"]: change["approvers"] for change in document["changes"]}
    assert approvers == {"marko": ["ivan", "olena"], "ivan": ["ivan", "olena"]}
    assert "marko" not in document["summary"]["approvers"]


def test_without_an_admin_in_the_base_no_one_the_change_promotes_approves(tmp_path):
    from tests.review.repository import CONFIG, make_repository

    base = CONFIG.replace("owner: olena", "owner: marko")
    for admin in ("olena", "ivan"):
        base = base.replace(f"{admin}: {{role: admin}}", f"{admin}: {{role: contributor}}")
    repository = make_repository(tmp_path, base)
    repository.edit("marko: {role: contributor}", "marko: {role: admin}")
    approvers = {c["name"]: c["approvers"] for c in as_json(_review(repository))["changes"]}
    assert approvers == {"marko": []}


def test_a_change_that_cannot_change_members_has_no_membership_effect(repository):
    repository.edit("key: id", "key: customer_id")  # for reports: members match by e-mail
    query = "query: SELECT id, email, first_name, last_name, status, status_at FROM people"
    repository.edit(query, f"query: '  {query.removeprefix('query: ')}  '")
    review = _review(repository)
    assert review.passes("--fail-on", "warning")
    document = as_json(review)
    assert [(c["name"], c["effects"]) for c in document["changes"]] == [("vip", [])]
    # The query's text did change: the one-line rendering shows how.
    text = as_text(review)
    assert 'query: "SELECT id, email' in text and '→ "  SELECT id, email' in text, text
    markdown = as_markdown(review)
    assert "| `SELECT id, email" in markdown and "| `␠␠SELECT id, email" in markdown, markdown


def test_only_loosened_change_guards_are_rated_and_shares_read_as_written(repository):
    repository.edit("send_welcome_message: false", "guards: {max_removed: 12.5%, min_members: 5}")
    tightened = _review(repository)
    assert tightened.passes("--fail-on", "warning")
    tighter = as_json(tightened)
    assert [(c["name"], c["effects"], c["fields"]) for c in tighter["changes"]] == [
        (
            "vip",
            [],
            [
                {"path": "guards.max_removed", "before": "20%", "after": "12.5%"},
                {"path": "guards.min_members", "before": "0", "after": "5"},
            ],
        )
    ]
    # The daemon's guards are every export's defaults: each one that takes them loosens.
    repository.edit("state_dir: ./state", "state_dir: ./state\n  guards: {max_changed: 50%}")
    git(repository.root, "commit", "--quiet", "-am", "guards")
    repository.edit("guards: {max_changed: 50%}", "guards: {max_changed: 100%}")
    looser = as_json(_review(repository))
    effects = {
        change["name"]: [(e["code"], e["risk"], e["message"]) for e in change["effects"]]
        for change in looser["changes"]
        if change["kind"] == "export"
    }
    message = "the change guards loosen (max_changed 50% → 100%)"
    assert {name: [code for code, _, _ in found] for name, found in effects.items()} == {
        name: ["guards_loosened"] for name in ("vip", "paused", "retired")
    }
    assert effects["paused"][0][1] == "warning" and message in effects["paused"][0][2]


def test_allowed_users_are_a_set_and_an_empty_list_is_none(tmp_path):
    from tests.review.repository import CONFIG

    base = CONFIG.replace("allowed_users: [marko]", "allowed_users: [marko, ivan]", 1)
    spare = "data_transfer_accepted: false"  # only connection `spare` has it
    base = base.replace(spare, f"allowed_users: [ivan]\n    {spare}")
    repository = make_repository(tmp_path, base)
    repository.edit("allowed_users: [marko, ivan]", "allowed_users: [ivan, marko]")
    reordered = _review(repository)
    assert reordered.passes("--exit-code")
    assert "no changes" in as_text(reordered), as_text(reordered)

    repository.edit("allowed_users: [ivan]", "allowed_users: []")
    (change,) = as_json(_review(repository))["changes"]
    assert change["name"] == "spare"
    assert change["fields"] == [{"path": "allowed_users", "before": "ivan", "after": None}]


def test_fields_are_reported_one_by_one_and_secrets_as_references(repository):
    repository.edit(
        "api_key: {env: OMNISYNC_REVIEW_MAIN_KEY}", "api_key: {env: OMNISYNC_REVIEW_OTHER_KEY}"
    )
    repository.edit("display_name: Main store", "display_name: Main shop")
    secret = "sk-live-do-not-print-me"
    # The real command, with both keys' values in its environment: none may reach a format.
    outputs = [
        repository.diff(
            "--base",
            "HEAD",
            "--format",
            form,
            OMNISYNC_REVIEW_MAIN_KEY=secret,
            OMNISYNC_REVIEW_OTHER_KEY=secret,
        ).stdout
        for form in ("text", "json", "markdown", "github")
    ]
    assert all(secret not in output for output in outputs)
    document = json.loads(outputs[1])
    main = next(change for change in document["changes"] if change["name"] == "main")
    assert main["fields"] == [
        {
            "path": "api_key",
            "before": "{env: OMNISYNC_REVIEW_MAIN_KEY}",
            "after": "{env: OMNISYNC_REVIEW_OTHER_KEY}",
        },
        {"path": "display_name", "before": "Main store", "after": "Main shop"},
    ]
    # Another key is another brand: every export of the connection moves.
    vip = next(change for change in document["changes"] if change["name"] == "vip")
    assert [effect["code"] for effect in vip["effects"]] == ["moves_brand"]
    assert vip["fields"] == []


def test_a_schedule_shows_only_the_keys_of_its_kind(repository):
    # An interval has no time zone: none is shown, named or inline.
    repository.edit('cron: "0 * * * *"', "every: 20s")
    repository.edit("schedule: hourly", "schedule: {every: 30s}")
    repository.edit("every: 15m", 'cron: "0 9 * * 1-5"')

    fields = {
        (change["name"], field["path"]): (field["before"], field["after"])
        for change in as_json(_review(repository))["changes"]
        for field in change["fields"]
    }

    assert fields == {
        ("hourly", "cron"): ("0 * * * *", None),
        ("hourly", "timezone"): ("UTC", None),
        ("hourly", "every"): (None, "20s"),
        ("paused", "schedule"): ("hourly", None),
        ("paused", "schedule.every"): (None, "30s"),
        ("vip", "schedule.every"): ("15m", None),
        ("vip", "schedule.cron"): (None, "0 9 * * 1-5"),
        ("vip", "schedule.timezone"): (None, "UTC"),
    }


def test_exit_codes(repository, tmp_path):
    unchanged = repository.diff("--base", "HEAD", "--exit-code")
    assert unchanged.returncode == 0, unchanged.stderr
    assert "no changes" in unchanged.stdout

    repository.edit("every: 15m", "every: 1h")  # info only
    assert repository.diff("--base", "HEAD", "--exit-code").returncode == 3
    # The same entry point in this process, for the combinations after each status's first.
    assert _here(repository, "--base", "HEAD").returncode == 0
    assert _here(repository, "--base", "HEAD", "--fail-on", "warning").returncode == 0

    repository.edit("send_welcome_message: false", "send_welcome_message: true")
    failed = repository.diff("--base", "HEAD", "--fail-on", "danger")
    assert failed.returncode == 1
    assert "welcome_messages_enabled" in failed.stderr
    assert (
        _here(repository, "--base", "HEAD", "--fail-on", "warning", "--exit-code").returncode == 1
    )

    assert repository.diff().returncode == 2  # no base
    assert _here(repository, "--base", "HEAD", "--base-config", "x").returncode == 2
    assert _here(repository, "--head", "HEAD", "--base-config", "x").returncode == 2
    unknown = repository.diff("--base", "no-such-branch")
    assert unknown.returncode == 2
    assert "no-such-branch" in unknown.stderr


def test_an_invalid_side_is_reported_with_file_and_line(repository):
    line = repository.edit("owner: marko", "owner: nobody")
    result = repository.diff("--base", "HEAD")
    assert result.returncode == 1
    assert f"{repository.path}:{line}:" in result.stderr
    assert "head config is invalid" in result.stderr

    github = _here(repository, "--base", "HEAD", "--format", "github")
    assert github.returncode == 1
    assert f"::error file={repository.path},line={line}," in github.stdout


def test_an_invalid_base_revision_is_reported_at_the_working_tree_path(repository):
    from tests.review.repository import git

    line = repository.edit("owner: marko", "owner: nobody")
    git(repository.root, "commit", "--quiet", "-am", "broken")
    repository.edit("owner: nobody", "owner: marko")
    result = repository.diff("--base", "HEAD")
    assert result.returncode == 1
    assert f"{repository.path}:{line}:" in result.stderr
    assert "base config is invalid" in result.stderr
    # Labelled as the base's, never annotated on the head's lines (which are fixed).
    github = _here(repository, "--base", "HEAD", "--format", "github")
    assert github.returncode == 1
    assert "::" not in github.stdout, github.stdout
    assert re.search(
        rf"^base HEAD \(git:\w+\): {re.escape(str(repository.path))}:{line}:", github.stderr, re.M
    )


def test_json_names_files_relative_to_the_working_directory(repository, monkeypatch):
    repository.edit("tag: vip", "tag: vip-gold")
    monkeypatch.chdir(repository.root)
    result = _here(repository, "--base", "HEAD", "--format", "json")
    assert result.returncode == 0
    (change,) = json.loads(result.stdout)["changes"]
    assert change["file"] == "omnisync.yaml"
    assert {effect["file"] for effect in change["effects"]} == {"omnisync.yaml"}


def test_two_revisions_and_two_paths(repository, tmp_path):
    from tests.review.repository import git

    repository.edit("tag: vip", "tag: vip-gold")
    git(repository.root, "commit", "--quiet", "-am", "retag")
    repository.edit("tag: vip-gold", "tag: vip-platinum")  # the working tree is not compared
    document = json.loads(
        repository.diff("--base", "HEAD~1", "--head", "HEAD", "--format", "json").stdout
    )
    assert [(c["name"], [f["after"] for f in c["fields"]]) for c in document["changes"]] == [
        ("vip", ["vip-gold"])
    ]
    # Each side is named by its revision and commit.
    assert document["base"].startswith("HEAD~1 (git:"), document["base"]
    assert document["head"].startswith("HEAD (git:"), document["head"]
    # No path is "changed" only because each side was read from its own directory: a copy
    # elsewhere stands for the config at --config, its relative paths resolved from there.
    other = tmp_path / "copy"
    other.mkdir()
    shutil.copy(repository.path, other / "omnisync.yaml")
    same = _here(repository, "--base-config", str(other / "omnisync.yaml"), "--fail-on", "danger")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "no changes" in same.stdout


def test_a_copy_elsewhere_with_paths_that_climb_out_of_its_directory_is_the_same(
    repository, tmp_path
):
    """``../`` paths of a --base-config copy resolve beside --config too, whatever the
    depth of the copy's directory."""
    repository.edit(
        "crm: {kind: sqlite, path: ./data/crm.sqlite}", "crm: {kind: sqlite, path: ../crm.sqlite}"
    )
    repository.edit("state_dir: ./state", "state_dir: ../state")
    copy = tmp_path / "elsewhere" / "deeper" / "omnisync.yaml"
    copy.parent.mkdir(parents=True)
    shutil.copy(repository.path, copy)
    same = _here(repository, "--base-config", str(copy), "--fail-on", "warning")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "no changes" in same.stdout
    broken = copy.parent / "broken.yaml"
    broken.write_text("version: [\n")
    invalid = repository.diff("--base-config", str(broken))
    assert invalid.returncode == 1 and f"base {broken}: {broken}:2:1:" in invalid.stderr


def test_text_is_coloured_only_when_asked_or_on_a_terminal(repository):
    from tests.cli import run_cli_in_terminal

    repository.edit("send_welcome_message: false", "send_welcome_message: true")
    plain = _here(repository, "--base", "HEAD")  # not a terminal
    assert "\x1b[" not in plain.stdout
    coloured = _here(repository, "--base", "HEAD", "--color", "always")
    assert "\x1b[" in coloured.stdout
    status, output = run_cli_in_terminal("diff", "--config", str(repository.path), "--base", "HEAD")
    assert status == 0, output
    assert "\x1b[" in output and "welcome_messages_enabled" in output


def test_long_markdown_details_are_collapsed(repository):
    repository.edit("send_welcome_message: false", "send_welcome_message: true")
    short = as_markdown(_review(repository))
    assert "<details>" not in short
    for old, new in (
        ("tag: vip", "tag: vip-gold"),
        ("on_leave: keep", "on_leave: untag"),
        ("every: 15m", "every: 1h"),
        ("marko: {role: contributor}", "marko: {role: admin}"),
        ("data_transfer_accepted: false", "data_transfer_accepted: true"),
        ("enabled: false", "enabled: true"),
        ("display_name: Main store", "display_name: Main shop"),
    ):
        repository.edit(old, new)
    long = as_markdown(_review(repository))
    table = long.index("| object | change |")
    assert table < long.index("<details><summary>") < long.index("#### export `vip`")
    assert long.rstrip().endswith("</details>")
