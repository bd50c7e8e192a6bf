"""The base revision's config as the loader would read it in the working tree.

A directory's own ``*.yaml``/``*.yml`` and nothing else of the repository; a committed
symbolic link as its target in the revision; no config at all as an empty one.

Each diff runs the command's entry point in this process (real repositories, real git);
the one that watches which git calls the command makes runs it as a separate process.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.cli import run_cli
from tests.review.repository import CONFIG, git
from tests.review.reviewing import diff_here

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

MAIN, EXPORTS = CONFIG.split("exports:\n")
EXPORTS, DAEMON = EXPORTS.split("daemon:\n")


def _repository(root: Path, *, link: str) -> Path:
    """A repository whose ``config/exports.yaml`` is a symbolic link to ``link``, with the
    exports in ``common/exports.yaml``; returns the config directory."""
    (root / "config").mkdir(parents=True)
    (root / "common").mkdir()
    (root / "config" / "main.yaml").write_text(f"{MAIN}daemon:\n{DAEMON}")
    (root / "common" / "exports.yaml").write_text(f"version: 1\nexports:\n{EXPORTS}")
    (root / "config" / "exports.yaml").symlink_to(link)
    git(root, "init", "--quiet")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "config")
    return root / "config"


def _diff(config: Path, *arguments: str) -> tuple[int, str, str]:
    """``omnisync diff --config CONFIG --base HEAD ARGUMENTS``, in this process."""
    result = diff_here("--config", str(config), "--base", "HEAD", *arguments)
    return result.returncode, result.stdout, result.stderr


def test_a_committed_symbolic_link_is_read_as_its_target_in_the_revision(tmp_path):
    config = _repository(tmp_path / "repository", link="../common/exports.yaml")

    code, out, err = _diff(config, "--exit-code", "--fail-on", "danger")

    assert code == 0, out + err
    assert "no changes" in out


def test_a_config_directory_that_is_a_committed_link_is_read_where_the_base_points_it(
    tmp_path,
):
    """The base is the link as the revision holds it, not as the working tree does: else a
    change that points it at a new copy is read against an empty base (every object added,
    the head's admins approving)."""
    root = tmp_path / "repository"
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "omnisync.yaml").write_text(CONFIG)
    (root / "config").symlink_to("conf")
    git(root, "init", "--quiet")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "config")
    code, out, err = _diff(root / "config", "--exit-code")
    assert code == 0, out + err
    assert "no changes" in out

    shutil.copytree(root / "conf", root / "conf2")
    promoted = CONFIG.replace("marko: {role: contributor}", "marko: {role: admin}")
    (root / "conf2" / "omnisync.yaml").write_text(promoted)
    (root / "config").unlink()
    (root / "config").symlink_to("conf2")
    code, out, err = _diff(root / "config", "--format", "json")
    assert code == 0, out + err
    changes = {change["name"]: change["approvers"] for change in json.loads(out)["changes"]}
    assert changes == {"marko": ["ivan", "olena"]}


def test_a_revision_git_cannot_read_is_an_error_not_an_empty_base(tmp_path):
    """A read that fails (a partial clone offline, a corrupt repository) must not look
    like a revision without config, where the head's admins approve everything."""
    root = tmp_path / "repository"
    root.mkdir()
    (root / "omnisync.yaml").write_text(CONFIG)
    git(root, "init", "--quiet")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "config")
    tree = git(root, "rev-parse", "HEAD^{tree}").strip()
    os.remove(root / ".git" / "objects" / tree[:2] / tree[2:])

    code, out, err = _diff(root / "omnisync.yaml")

    assert code == 2, out + err
    assert "cannot list" in err and "no config" not in out, out + err


@pytest.mark.parametrize(
    ("link", "says"),
    [("../common/missing.yaml", "leads nowhere"), ("{outside}", "out of the repository")],
    ids=["dangling", "outside"],
)
def test_a_link_git_cannot_follow_in_the_revision_is_named(tmp_path, link, says):
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(f"version: 1\nexports:\n{EXPORTS}")
    config = _repository(tmp_path / "repository", link=link.format(outside=outside))

    code, out, err = _diff(config)

    assert code == 2, out + err
    assert "config/exports.yaml in revision 'HEAD'" in err and says in err, err


def test_only_the_files_the_loader_reads_are_taken_from_the_revision(tmp_path):
    # The repository's root is the config directory (pre-commit's `--config .`), beside
    # documentation and a subdirectory of YAML the loader never reads.
    root = tmp_path / "repository"
    (root / "docs" / "more").mkdir(parents=True)
    (root / "omnisync.yaml").write_text(CONFIG)
    for number in range(30):
        (root / "docs" / f"note{number}.md").write_text(f"note {number}\n")
        (root / "docs" / "more" / f"other{number}.yaml").write_text("not: [config\n")
    (root / "README.md").write_text("# configs\n")
    git(root, "init", "--quiet")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "config")
    # git as the diff runs it, each call written down.
    wrapper = tmp_path / "bin" / "git"
    wrapper.parent.mkdir()
    calls = tmp_path / "git-calls"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {shutil.which("git")} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)

    # The real command, a process of its own: its git is the one on its PATH.
    result = run_cli(
        "diff",
        "--config",
        str(root),
        "--base",
        "HEAD",
        extra_env={"PATH": f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}"},
    )
    code, out, err = result.returncode, result.stdout, result.stderr

    assert code == 0, out + err
    assert "no changes" in out
    reads = [line for line in calls.read_text().splitlines() if "cat-file" in line]
    assert len(reads) == 1, reads  # every file in one process, and only omnisync.yaml


def test_a_base_without_the_config_is_an_empty_config(tmp_path):
    # The first pull request that adds the config.
    root = tmp_path / "repository"
    root.mkdir()
    (root / "README.md").write_text("# configs\n")
    git(root, "init", "--quiet")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "start")
    (root / "config").mkdir()
    (root / "config" / "omnisync.yaml").write_text(CONFIG)

    code, out, err = _diff(root / "config", "--format", "json")

    assert code == 0, out + err
    document = json.loads(out)
    assert document["base"].startswith("HEAD (git:") and "no config" in document["base"]
    assert {change["change"] for change in document["changes"]} == {"added"}
    kinds = {change["kind"] for change in document["changes"]}
    assert kinds == {"user", "source", "segment", "connection", "schedule", "export", "daemon"}
    effects = {
        (change["name"], effect["code"], effect["risk"])
        for change in document["changes"]
        for effect in change["effects"]
    }
    assert ("vip", "first_export", "warning") in effects
    assert ("paused", "first_export", "info") in effects  # added disabled: nothing sent
    assert ("ivan", "permission_granted", "warning") in effects
    # No admin before it: the admins it names approve the users, connections and daemon.
    approvers = {change["name"]: change["approvers"] for change in document["changes"]}
    assert approvers["marko"] == approvers[""] == ["ivan", "olena"]
    assert approvers["vip"] == ["marko"]
    # Self-approved, as a moved config would be: a danger for CI to stop at.
    assert ("", "no_base_config", "danger") in effects


def test_a_moved_config_directory_cannot_approve_itself_unseen(tmp_path):
    root = tmp_path / "repository"
    (root / "config").mkdir(parents=True)
    (root / "config" / "omnisync.yaml").write_text(CONFIG)
    git(root, "init", "--quiet")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "config")
    git(root, "mv", "config", "conf")  # and, in the same pull request, a new admin
    moved = root / "conf" / "omnisync.yaml"
    moved.write_text(moved.read_text().replace("marko: {role: contributor", "marko: {role: admin"))

    code, out, err = _diff(root / "conf", "--fail-on", "danger")

    assert code == 1, out + err
    assert "danger no_base_config: the base revision holds no config at this path" in out
