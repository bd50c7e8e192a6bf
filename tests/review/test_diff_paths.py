"""Paths a config names outside its repository mean the same on both sides of a diff."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli import run_cli
from tests.review.repository import CONFIG, ConfigRepository, git, make_repository

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

MAIN_KEY = "api_key: {env: OMNISYNC_REVIEW_MAIN_KEY}"


def _repository(tmp_path: Path, *, main_key: str = MAIN_KEY) -> ConfigRepository:
    """The review config with paths that climb out of the repository with ``../`` (one and
    two levels) and an absolute one, in a repository nested deeper than a temporary
    directory, so that no path lands in the same place from both by chance."""
    content = (
        CONFIG.replace("path: ./data/crm.sqlite", "path: ../../c/cdp.sqlite")
        .replace("api_key: {file: ./secrets/spare-key}", "api_key: {file: ../../creds/spare}")
        .replace("state_dir: ./state", f"state_dir: {tmp_path / 'outside' / 'state'}")
        .replace(MAIN_KEY, main_key)
    )
    return make_repository(tmp_path / "teams" / "crm" / "configs", content)


def test_paths_out_of_the_repository_do_not_change_when_nothing_changed(tmp_path):
    repository = _repository(tmp_path)

    unchanged = repository.diff("--base", "HEAD", "--exit-code", "--fail-on", "danger")

    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert "no changes" in unchanged.stdout


def test_a_change_of_a_path_out_of_the_repository_is_reported_as_written(tmp_path):
    repository = _repository(tmp_path)
    repository.edit(
        "crm: {kind: sqlite, path: ../../c/cdp.sqlite}",
        "crm: {kind: sqlite, path: ../../d/cdp.sqlite}",
    )
    repository.edit("api_key: {file: ../../creds/spare}", "api_key: {file: ../creds/spare}")

    document = repository.diff_json()

    fields = {change["name"]: change["fields"] for change in document["changes"]}
    assert {name: found for name, found in fields.items() if found} == {
        "crm": [
            {
                "path": "path",
                "before": str(tmp_path / "teams" / "c" / "cdp.sqlite"),
                "after": str(tmp_path / "teams" / "d" / "cdp.sqlite"),
            }
        ],
        "spare": [
            {
                "path": "api_key",
                "before": f"{{file: {tmp_path / 'teams' / 'creds' / 'spare'}}}",
                "after": f"{{file: {tmp_path / 'teams' / 'crm' / 'creds' / 'spare'}}}",
            }
        ],
    }
    # The exports of the source's segments may change members; nothing else is reported.
    effects = {effect["code"] for change in document["changes"] for effect in change["effects"]}
    assert effects == {"membership_may_change"}
    assert "omnisync-diff-" not in json.dumps(document)


def test_a_config_directory_reached_through_a_symbolic_link_keeps_its_paths(tmp_path):
    # The working tree's config resolves its paths from the link, not from the real path.
    repository = tmp_path / "real" / "repository"
    (repository / "config").mkdir(parents=True)
    content = CONFIG.replace("path: ./data/crm.sqlite", "path: ../../c/cdp.sqlite")
    (repository / "config" / "omnisync.yaml").write_text(content)
    git(repository, "init", "--quiet")
    git(repository, "add", "config")
    git(repository, "commit", "--quiet", "-m", "config")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    config = tmp_path / "link" / "repository" / "config"

    unchanged = run_cli(
        "diff", "--config", str(config), "--base", "HEAD", "--exit-code", "--fail-on", "danger"
    )

    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert "no changes" in unchanged.stdout


def test_an_unchanged_key_file_out_of_the_repository_does_not_move_the_brand(tmp_path):
    repository = _repository(tmp_path, main_key="api_key: {file: ../creds/main}")

    unchanged = repository.diff("--base", "HEAD", "--exit-code", "--fail-on", "danger")

    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
