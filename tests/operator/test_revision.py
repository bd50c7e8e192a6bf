"""The config revision `omnisync validate` reports: a git commit only for files git holds.

git runs as a process of its own each time; `omnisync validate` does so once (outside any
repository), and runs through its entry point in this process for every other revision
(:func:`revision_of`): no interpreter to start.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import run_cli, run_cli_here
from tests.operator.configs import write_config

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

DIGEST = re.compile(r"revision (sha256:[0-9a-f]{12})$")


def git(repository: Path, *arguments: str) -> str:
    completed = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *arguments],
        cwd=repository,
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.strip()


def revision_of(path: Path) -> str:
    """The revision ``omnisync validate PATH`` reports, run in this process."""
    result = run_cli_here("validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    line = result.stdout.strip().splitlines()[-1]
    return line.rsplit(" revision ", 1)[1]


@pytest.fixture
def repository(tmp_path: Path) -> tuple[Path, str]:
    """A work tree like omnisync's own: a tracked config, an ignored demo-data/; its commit."""
    root = tmp_path / "checkout"
    root.mkdir()
    git(root, "init", "--quiet")
    (root / ".gitignore").write_text("/demo-data/\n*.sqlite\n")
    write_config(root / "config")
    git(root, "add", ".gitignore", "config/omnisync.yaml")
    git(root, "commit", "--quiet", "-m", "config")
    return root, git(root, "rev-parse", "--short", "HEAD")


def test_a_config_in_an_ignored_directory_of_a_work_tree_is_a_digest(repository):
    root, _ = repository
    config = write_config(root / "demo-data")
    assert git(root, "check-ignore", str(config))  # the situation of `make demo` in a clone
    revision = revision_of(config)
    assert revision.startswith("sha256:"), revision
    assert revision == revision_of(root / "demo-data")


def test_an_untracked_config_inside_a_work_tree_is_a_digest(repository):
    root, _ = repository
    config = write_config(root / "scratch", name="try.yaml")
    assert DIGEST.search(f"revision {revision_of(config)}")


def test_a_config_outside_any_repository_is_a_digest(tmp_path):
    config = write_config(tmp_path / "elsewhere")
    # Stop git looking above tmp_path, whatever the machine's /tmp is inside.
    result = run_cli("validate", str(config), extra_env={"GIT_CEILING_DIRECTORIES": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert DIGEST.search(result.stdout.strip()), result.stdout


def test_a_tracked_config_is_its_commit_and_dirty_once_modified(repository):
    root, commit = repository
    config = root / "config" / "omnisync.yaml"
    assert revision_of(config) == f"git:{commit}"
    assert revision_of(config.parent) == f"git:{commit}"  # the directory: its sqlite is ignored
    config.write_text(config.read_text().replace("every: 15m", "every: 20m"))
    assert revision_of(config) == f"git:{commit}+dirty"
    git(root, "add", str(config))  # staged is not committed either
    assert revision_of(config) == f"git:{commit}+dirty"


def test_an_untracked_file_beside_tracked_ones_makes_the_directory_dirty(repository):
    root, commit = repository
    extra = root / "config" / "more.yaml"
    extra.write_text("version: 1\n")
    assert revision_of(root / "config") == f"git:{commit}+dirty"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a repository's owner needs root")
def test_a_repository_owned_by_another_user_still_gives_its_commit(repository):
    """Under systemd's DynamicUser the daemon is not the owner of /etc/omnisync: git calls
    that "dubious ownership" and refuses; the revision must still be the commit."""
    root, commit = repository
    for path in [root, *root.rglob("*")]:
        os.lchown(path, 65534, 65534)
    refused = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0 and "dubious ownership" in refused.stderr
    config = root / "config" / "omnisync.yaml"
    assert revision_of(config) == f"git:{commit}"
    config.write_text(config.read_text().replace("every: 15m", "every: 20m"))
    assert revision_of(config) == f"git:{commit}+dirty"


def test_a_commit_of_the_loaded_bytes_is_clean_again(repository):
    root, commit = repository
    config = root / "config" / "omnisync.yaml"
    config.write_text(config.read_text().replace("every: 15m", "every: 20m"))
    assert revision_of(config) == f"git:{commit}+dirty"
    git(root, "commit", "--quiet", "-am", "every 20m")
    assert revision_of(config) == f"git:{git(root, 'rev-parse', '--short', 'HEAD')}"
