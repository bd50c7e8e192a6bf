"""``omnisync validate`` and ``omnisync schema``, in process and as real processes.

Real processes (:func:`run`, in a bare environment) for the first run of each exit code,
the secrets read from the environment and the terminal's encoding; the other formats
and paths run through the entry point in this process (no interpreter to start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omnisync.cli.main import main
from omnisync.config.schema import load_schema
from tests.cli import run_cli_here
from tests.config.helpers import BASE, EXAMPLE, REPOSITORY, SPLIT, replaced

KEY = "sk-test-4d3c2b1a"


def run(
    *arguments: str, environ: dict[str, str] | None = None, cwd: Path = REPOSITORY
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omnisync", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": os.environ["PATH"],
            "HOME": "/home/tester",
            "PYTHONPATH": str(REPOSITORY),
            **(environ or {}),
        },
        check=False,
    )


def broken(tmp_path: Path) -> Path:
    path = tmp_path / "omnisync.yaml"
    text = replaced("    role: admin\n", "    role: boss\n")
    path.write_text(
        replaced("    owner: marko\n", "    owner: petro\n", text=text), encoding="utf-8"
    )
    return path


def test_the_example_validates_as_the_readme_says() -> None:
    completed = run("validate", "config.example.yaml")

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.startswith("config OK: 2 exports, revision ")
    assert completed.stderr == ""


def test_the_split_directory_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--config", str(SPLIT)]) == 0
    assert capsys.readouterr().out.startswith("config OK: 2 exports, revision ")


def test_text_format_lists_every_problem_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = broken(tmp_path)

    assert main(["validate", str(path)]) == 1
    output = capsys.readouterr()
    assert output.out.splitlines() == [
        f"{path}:4:5: users.olena.role: 'boss' is not one of: admin, contributor",
        f"{path}:24:5: exports.vip.owner: there is no user 'petro'",
    ]
    assert output.err == "2 errors in 1 file\n"


def test_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = broken(tmp_path)

    assert main(["validate", str(path), "--format", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is False
    assert document["files"] == [str(path)]
    assert document["diagnostics"][1] == {
        "file": str(path),
        "line": 24,
        "column": 5,
        "path": "exports.vip.owner",
        "message": "there is no user 'petro'",
    }

    assert main(["validate", str(EXAMPLE), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["valid"], document["exports"], document["diagnostics"]) == (True, 2, [])
    assert document["revision"]


def test_github_format_escapes_what_the_runner_would_misread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "odd,name: here"
    directory.mkdir()
    path = broken(directory)

    assert main(["validate", str(path), "--format", "github"]) == 1
    lines = capsys.readouterr().out.splitlines()
    escaped = str(path).replace(":", "%3A").replace(",", "%2C")
    assert lines == [
        f"::error file={escaped},line=4,col=5,title=omnisync validate::"
        "users.olena.role: 'boss' is not one of: admin, contributor",
        f"::error file={escaped},line=24,col=5,title=omnisync validate::"
        "exports.vip.owner: there is no user 'petro'",
    ]


def test_exit_2_for_unreadable_paths_and_conflicting_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path / "absent")]) == 2
    output = capsys.readouterr()
    assert output.out == f"{tmp_path}/absent:1:1: cannot read: no such file or directory\n"

    assert main(["validate", str(EXAMPLE), "--config", str(SPLIT)]) == 2
    assert "give the config path once" in capsys.readouterr().err

    completed = run("validate", "--format", "xml")
    assert completed.returncode == 2
    assert "invalid choice" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_the_default_path_comes_from_omnisync_config() -> None:
    completed = run_cli_here("validate", extra_env={"OMNISYNC_CONFIG": str(SPLIT)})
    assert completed.returncode == 0, completed.stdout + completed.stderr

    completed = run_cli_here("validate", extra_env={"OMNISYNC_CONFIG": "/nonexistent/omnisync"})
    assert completed.returncode == 2
    assert completed.stdout == "/nonexistent/omnisync:1:1: cannot read: no such file or directory\n"


def test_check_secrets_resolves_references_and_never_prints_values(tmp_path: Path) -> None:
    missing = run("validate", "--check-secrets", str(EXAMPLE))
    example_lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    line = 1 + next(index for index, text in enumerate(example_lines) if "api_key:" in text)
    assert missing.returncode == 1
    assert missing.stdout == (
        f"{EXAMPLE}:{line}:5: connections.main-store.api_key: secret env:OMNISEND_API_KEY is"
        " unavailable: environment variable OMNISEND_API_KEY is not set\n"
    )

    present = run("validate", "--check-secrets", str(EXAMPLE), environ={"OMNISEND_API_KEY": KEY})
    assert present.returncode == 0
    assert present.stdout.startswith("config OK: 2 exports, revision ")
    assert present.stdout.rstrip().endswith("secrets resolved")
    assert KEY not in present.stdout + present.stderr

    # Without the flag, secrets are not looked at: CI has none.
    assert run("validate", str(EXAMPLE)).returncode == 0


def test_check_secrets_lists_its_problems_sorted_by_place(tmp_path: Path) -> None:
    # The daemon comes first in this file, the connection last: the output follows the file.
    path = tmp_path / "omnisync.yaml"
    daemon = "daemon:\n  control: {token: {env: NO_TOKEN}}\n"
    warehouse = "  warehouse:\n    kind: postgres\n    dsn: {env: NO_DSN}\n"
    text = replaced("version: 1\n", f"version: 1\n{daemon}")
    path.write_text(replaced("sources:\n", f"sources:\n{warehouse}", text=text), encoding="utf-8")

    completed = run("validate", "--check-secrets", str(path))

    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert [line.split(": ")[:2] for line in completed.stdout.splitlines()] == [
        [f"{path}:3:13", "daemon.control.token"],
        [f"{path}:12:5", "sources.warehouse.dsn"],
        [f"{path}:22:5", "connections.main.api_key"],
    ]


def test_a_plaintext_key_is_never_printed(tmp_path: Path) -> None:
    path = tmp_path / "omnisync.yaml"
    path.write_text(
        replaced("api_key: {env: OMNISEND_API_KEY}", f"api_key: {KEY}"), encoding="utf-8"
    )

    # A process of its own for the first format; the others in this process.
    completed = [run("validate", str(path), "--format", "text")]
    for output_format in ("json", "github"):
        completed.append(run_cli_here("validate", str(path), "--format", output_format))
    for each in completed:
        assert each.returncode == 1
        assert KEY not in each.stdout + each.stderr
        assert "OMNISEND_API_KEY" in each.stdout


def test_schema_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == load_schema()


def test_the_base_config_is_valid_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "omnisync.yaml"
    path.write_text(BASE, encoding="utf-8")
    completed = run_cli_here("validate", str(path))
    assert completed.returncode == 0
    assert "config OK: 1 export, revision sha256:" in completed.stdout


def test_undecodable_file_names_and_ascii_terminals_get_escapes_not_tracebacks(
    tmp_path: Path,
) -> None:
    name = os.fsdecode(b"caf\xe9.yaml")  # not UTF-8: a surrogate-escaped str
    (tmp_path / name).write_text(BASE + "schedules:\n  s: {cron: '0 3 * * *', timezone: Kyív}\n")
    completed = run("validate", str(tmp_path), environ={"PYTHONIOENCODING": "ascii", "LC_ALL": "C"})

    assert completed.returncode == 1
    assert "Traceback" not in completed.stdout + completed.stderr
    assert "caf\\udce9.yaml:28:26: schedules.s.timezone: unknown time zone 'Ky\\xedv'" in (
        completed.stdout
    )
