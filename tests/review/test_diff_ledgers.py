"""`omnisync diff` reads the ledgers where they are: the store the base config names.

The review config keeps its state under ``./state`` (beside the config, not committed);
each test seeds the ledgers there, as runs would have left them.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from omnisync.state import open_state_store
from tests.cli import run_cli
from tests.review.repository import ConfigRepository, git, make_repository
from tests.state.seeding import deliver

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

NOW = datetime(2026, 3, 1, tzinfo=UTC)
RETIRED = (
    "retired: {segment: everyone, connection: main, owner: olena, tag: old,"
    " mapping: {email: email}}"
)


@pytest.fixture
def repository(tmp_path: Path) -> ConfigRepository:
    repository = make_repository(tmp_path / "configs")
    with open_state_store(repository.root / "state") as store:
        for export, members in (("vip", 300), ("retired", 40), ("paused", 7)):
            entries = [(f"{export}-{n}@example.com", n, "tag") for n in range(members)]
            deliver(store, export, entries, now=NOW)
    return repository


def _diff(repository: ConfigRepository, *arguments: str) -> dict[str, Any]:
    """``omnisync diff`` as JSON with the config's own state store (no --state-dir)."""
    result = run_cli("diff", "--config", str(repository.path), "--format", "json", *arguments)
    assert result.returncode == 0, result.stdout + result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _effects(document: dict[str, Any], code: str) -> dict[str, dict[str, Any]]:
    return {
        change["name"]: effect
        for change in document["changes"]
        for effect in change["effects"]
        if effect["code"] == code
    }


def test_moving_the_state_store_restarts_every_enabled_export_from_an_empty_ledger(repository):
    repository.edit("state_dir: ./state", "state_dir: ./state-new")

    document = _diff(repository, "--base", "HEAD")

    # Counted from the store the ledgers are in: the base's.
    assert document["summary"]["counts"] == "known"
    assert str(repository.root / "state") in document["summary"]["counts_note"]
    moved = _effects(document, "state_store_moved")
    assert set(moved) == {"vip", "retired"}  # not `paused`: disabled, it sends nothing
    assert moved["vip"]["risk"] == "warning"  # as resend_all_members
    assert moved["vip"]["members"] == 300
    assert moved["vip"]["requests"] == 3 + 2  # 300 upserted in 100s, tagged in 250s
    assert "upserted and tagged again" in moved["vip"]["message"]
    assert "subscription status" in moved["vip"]["message"]  # it maps consent
    failed = run_cli(
        "diff", "--config", str(repository.path), "--base", "HEAD", "--fail-on", "warning"
    )
    assert failed.returncode == 1 and "state_store_moved" in failed.stderr


def test_a_second_revision_reads_the_store_its_paths_name_in_the_working_tree(repository):
    repository.edit("tag: vip", "tag: vip-gold")
    git(repository.root, "commit", "--quiet", "-am", "retag")

    document = _diff(repository, "--base", "HEAD~1", "--head", "HEAD")

    assert document["summary"]["counts"] == "known", document["summary"]
    assert _effects(document, "retag_all_members")["vip"]["members"] == 300
    assert "omnisync-diff-" not in json.dumps(document)


def test_an_export_added_back_resumes_from_its_ledger(repository):
    repository.edit(RETIRED, "")
    git(repository.root, "commit", "--quiet", "-am", "retire")
    repository.path.write_text(
        repository.path.read_text().replace("daemon:", f"  {RETIRED}\ndaemon:")
    )

    document = _diff(repository, "--base", "HEAD")

    first = _effects(document, "first_export")["retired"]
    assert "resumes from the 40 members of its ledger" in first["message"], first
    assert "every member" not in first["message"]


def test_a_renamed_export_sends_every_member_again_consent_included(repository):
    # The ledger is kept by export name: `newsletter` starts from an empty one.
    repository.path.write_text(
        repository.path.read_text().replace("exports:\n  vip:\n", "exports:\n  newsletter:\n")
    )

    document = _diff(repository, "--base", "HEAD")

    renamed = _effects(document, "export_renamed")
    assert set(renamed) == {"newsletter"}, document
    effect = renamed["newsletter"]
    assert effect["risk"] == "danger"  # as moves_brand
    assert effect["members"] == 300  # the ledger left under the old name
    assert effect["requests"] == 3 + 2  # 300 upserted in 100s, tagged in 250s
    assert "'vip'" in effect["message"]
    assert "upserted and tagged again" in effect["message"]
    assert "subscription status again" in effect["message"]  # it maps consent
    assert "keep the name 'vip'" in effect["message"]
    assert "first_export" not in _codes(document, "newsletter")
    assert "export_removed" in _codes(document, "vip")
    failed = run_cli(
        "diff", "--config", str(repository.path), "--base", "HEAD", "--fail-on", "danger"
    )
    assert failed.returncode == 1 and "export_renamed" in failed.stderr


def _codes(document: dict[str, Any], name: str) -> list[str]:
    change = next(change for change in document["changes"] if change["name"] == name)
    return [effect["code"] for effect in change["effects"]]
