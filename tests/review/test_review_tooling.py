"""The review tooling the repository ships, each checked by the real tool.

- ``.pre-commit-hooks.yaml``: ``pre-commit run``, in a sample config repository whose
  ``.pre-commit-config.yaml`` names this checkout's hooks, runs ``omnisync-validate``, good
  and broken (the broken one fails with file:line), and the manual ``omnisync-diff`` hook;
- ``examples/ci/github-actions.yml`` and ``examples/ci/gitlab-ci.yml``: valid by
  ``check-jsonschema``'s built-in (vendored, offline) SchemaStore schemas.

pre-commit installs omnisync into an environment of its own (pip, from a snapshot of
this checkout), once per test session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.review.repository import ConfigRepository, git, make_repository

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(scope="module")
def project_snapshot(tmp_path_factory) -> tuple[Path, str]:
    """This checkout as pre-commit would fetch it: a repository with one commit of its files
    (tracked and new, not ignored), so that its hooks are those of the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    snapshot = tmp_path_factory.mktemp("omnisync-project")
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = snapshot / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git(snapshot, "init", "--quiet")
    git(snapshot, "add", "-A")
    git(snapshot, "commit", "--quiet", "-m", "snapshot")
    return snapshot, git(snapshot, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


def use_hooks(repository: ConfigRepository, snapshot: tuple[Path, str]) -> None:
    """Commit to ``repository`` the ``.pre-commit-config.yaml`` a user writes: this
    checkout's hooks, from the snapshot at its commit, with the hooks' own arguments.

    Unlike ``pre-commit try-repo`` (which builds the hook environment afresh in a store of
    its own on every call), ``pre-commit run`` keeps it in ``PRE_COMMIT_HOME`` by
    (repository, rev): every repository of the test shares the one built on first use."""
    project, commit = snapshot
    hooks = [{"id": "omnisync-validate"}, {"id": "omnisync-diff"}]
    config = {"repos": [{"repo": str(project), "rev": commit, "hooks": hooks}]}
    (repository.root / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    git(repository.root, "add", ".pre-commit-config.yaml")
    git(repository.root, "commit", "--quiet", "-m", "pre-commit")


def run_hook(
    repository: ConfigRepository, home: Path, hook: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PRE_COMMIT_HOME": str(home), "NO_COLOR": "1"}
    environment.pop("OMNISYNC_CONFIG", None)
    return subprocess.run(
        [
            *(sys.executable, "-m", "pre_commit", "run", hook),
            *("--all-files", "--color", "never", *extra),
        ],
        cwd=repository.root,
        capture_output=True,
        text=True,
        env=environment,
        timeout=900,
        check=False,
    )


@pytest.mark.long(12)
@pytest.mark.timeout(900)
def test_pre_commit_hooks_pass_a_good_config_and_fail_a_broken_one_with_file_and_line(
    tmp_path, project_snapshot, pre_commit_home
):
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    by_id = {hook["id"]: hook for hook in hooks}
    assert by_id["omnisync-diff"]["stages"] == ["manual"]

    good = make_repository(tmp_path / "good")
    use_hooks(good, project_snapshot)
    passed = run_hook(good, pre_commit_home, "omnisync-validate")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "omnisync validate" in passed.stdout and "Passed" in passed.stdout

    broken = make_repository(tmp_path / "broken")
    use_hooks(broken, project_snapshot)
    line = broken.edit("owner: marko", "owner: nobody")
    git(broken.root, "add", "-A")
    failed = run_hook(broken, pre_commit_home, "omnisync-validate")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Failed" in failed.stdout
    assert f"omnisync.yaml:{line}:" in failed.stdout, failed.stdout

    # The diff hook runs only when asked for (the manual stage), against HEAD.
    good.edit("send_welcome_message: false", "send_welcome_message: true")
    git(good.root, "add", "-A")
    skipped = run_hook(good, pre_commit_home, "omnisync-diff")
    assert "welcome_messages_enabled" not in skipped.stdout
    shown = run_hook(good, pre_commit_home, "omnisync-diff", "--hook-stage", "manual")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "danger welcome_messages_enabled" in shown.stdout


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("schema", "example"),
    [
        ("vendor.github-workflows", "examples/ci/github-actions.yml"),
        ("vendor.gitlab-ci", "examples/ci/gitlab-ci.yml"),
    ],
)
def test_ci_examples_are_valid_by_their_schemas(schema, example, tmp_path):
    result = check_jsonschema(schema, ROOT / example)
    assert result.returncode == 0, result.stdout + result.stderr
    # The check can fail: a misspelt key is refused.
    document = yaml.safe_load((ROOT / example).read_text())
    broken = tmp_path / Path(example).name
    if schema == "vendor.github-workflows":
        document["jobz"] = document.pop("jobs")
    else:
        document["stages"] = "not a list"
    broken.write_text(yaml.safe_dump(document))
    assert check_jsonschema(schema, broken).returncode == 1


def test_ci_examples_run_the_three_review_commands():
    github = (ROOT / "examples/ci/github-actions.yml").read_text()
    gitlab = (ROOT / "examples/ci/gitlab-ci.yml").read_text()
    for text in (github, gitlab):
        assert "omnisync validate " in text
        assert '--base "$BASE" --format markdown' in text
        assert "omnisync plan --config" in text and "--format markdown" in text
    assert "omnisync validate --format github" in github
    assert '--base "$BASE" --format github --fail-on danger' in github
