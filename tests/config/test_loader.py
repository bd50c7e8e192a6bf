"""Loading files and directories: merging, defaults, paths, revisions, unreadable paths."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from omnisync.config.build import build_config
from omnisync.config.diagnostics import ConfigInvalid, ConfigUnreadable
from omnisync.config.loader import (
    config_file_names,
    load_config,
    merge_documents,
    try_load_config,
)
from omnisync.config.model import Config, Position, RateLimit, Schedule
from omnisync.config.revision import LoadedFile, content_digest
from omnisync.config.yamlload import ParsedDocument, parse_document
from tests.config.helpers import BASE, ENVIRON, EXAMPLE, REPOSITORY, SPLIT, replaced

EXPORT = """\
version: 1
exports:
  second:
    segment: vip
    connection: main
    owner: olena
    tag: second
    mapping: {email: email}
"""


def without_origin(config: Config) -> Config:
    return dataclasses.replace(config, files=(), revision="", positions={})


def test_the_example_is_valid_and_complete() -> None:
    config = load_config(EXAMPLE, environ=ENVIRON)

    assert set(config.users) == {"olena", "marko"}
    assert config.sources["cdp"].path == str(REPOSITORY / "demo-data" / "cdp.sqlite")
    assert set(config.segments) == {"vip-customers", "ukraine-newsletter"}
    assert config.connections["main-store"].allowed_users == ("marko",)
    vip = config.exports["vip"]
    assert vip.owner == "marko"
    assert vip.schedule == Schedule(
        name="every-six-hours", cron="0 */6 * * *", timezone="Europe/Kyiv"
    )
    assert dict(vip.mapping.custom_properties) == {
        "loyalty_tier": "loyalty_tier",
        "lifetime_value": "lifetime_value",
    }
    newsletter = config.exports["ukraine-newsletter"]
    assert newsletter.schedule == Schedule(name=None, every_seconds=900)
    assert newsletter.on_leave == "keep"
    assert newsletter.consent is not None
    assert newsletter.consent.status_column == "email_status"
    assert newsletter.tag == "ukraine-newsletter"
    assert config.files == (str(EXAMPLE),)
    assert config.position("exports.vip.mapping.email") is not None


def test_the_split_directory_loads_to_the_same_config_as_the_example() -> None:
    merged = load_config(EXAMPLE, environ=ENVIRON)
    split = load_config(SPLIT, environ=ENVIRON)

    assert without_origin(split) == without_origin(merged)
    assert split.files == tuple(
        str(SPLIT / name)
        for name in (
            "00-people.yaml",
            "10-sources.yaml",
            "20-connections.yaml",
            "export-ukraine-newsletter.yaml",
            "export-vip.yaml",
        )
    )
    assert split.position("exports.vip.owner") == Position(str(SPLIT / "export-vip.yaml"), 8, 5)


def test_defaults_are_applied(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, BASE), environ={"HOME": "/home/tester"})

    connection = config.connections["main"]
    assert connection.display_name == "main"
    assert connection.base_url == "https://api.omnisend.com/api"
    assert connection.rate_limit == RateLimit(400, 60)
    export = config.exports["vip"]
    assert (export.tag, export.on_leave, export.enabled, export.schedule) == (
        "vip",
        "untag",
        True,
        None,
    )
    assert export.send_welcome_message is False
    assert config.daemon.state_dir == "/home/tester/.local/state/omnisync"
    assert config.daemon.control_listen == "127.0.0.1:9187"
    assert config.daemon.log_format == "text"
    assert config.daemon.reload_debounce_seconds == 1.0


@pytest.mark.parametrize(
    ("environ", "state_dir"),
    [
        ({"STATE_DIRECTORY": "/var/lib/omnisync:/var/lib/other"}, "/var/lib/omnisync"),
        ({"XDG_STATE_HOME": "/home/tester/.state"}, "/home/tester/.state/omnisync"),
        ({"XDG_STATE_HOME": "relative/state"}, "/home/tester/.local/state/omnisync"),
        ({}, "/home/tester/.local/state/omnisync"),
    ],
)
def test_default_state_directory(tmp_path: Path, environ: dict[str, str], state_dir: str) -> None:
    config = load_config(_write(tmp_path, BASE), environ={"HOME": "/home/tester", **environ})
    assert config.daemon.state_dir == state_dir


def test_relative_and_home_paths(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    text = replaced("    path: cdp.sqlite\n", "    path: ../data/./cdp.sqlite\n")
    text += "daemon:\n  state_dir: ~/state\n  reload_debounce: 250ms\n"
    config = load_config(_write(tmp_path / "conf", text), environ={"HOME": "/home/tester"})

    assert config.sources["cdp"].path == str(tmp_path / "data" / "cdp.sqlite")
    assert config.daemon.state_dir == "/home/tester/state"
    assert config.daemon.reload_debounce_seconds == 0.25


def test_directory_mode_reads_only_config_files_in_name_order(tmp_path: Path) -> None:
    for name in (
        "b.yml",
        "a.yaml",
        ".hidden.yaml",
        ".#a.yaml",
        "a.yaml~",
        ".a.yaml.swp",
        "#a.yaml#",
        "notes.txt",
    ):
        (tmp_path / name).write_text("version: 1\n", encoding="utf-8")
    (tmp_path / "sub.yaml").mkdir()
    (tmp_path / "sub.yaml" / "inner.yaml").write_text("version: 1\n", encoding="utf-8")

    assert config_file_names(str(tmp_path)) == [str(tmp_path / "a.yaml"), str(tmp_path / "b.yml")]


def test_a_dangling_link_in_a_directory_is_unreadable_not_skipped(tmp_path: Path) -> None:
    # Skipping it would drop its exports silently; a link to a directory is skipped like one.
    (tmp_path / "a.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "moved-away.yaml")
    (tmp_path / "c.yaml").symlink_to(tmp_path / "a.yaml")
    (tmp_path / "sub").mkdir()
    (tmp_path / "d.yaml").symlink_to(tmp_path / "sub")

    assert config_file_names(str(tmp_path)) == [
        str(tmp_path / name) for name in ("a.yaml", "b.yaml", "c.yaml")
    ]
    result = try_load_config(tmp_path, environ=ENVIRON)
    assert result.unreadable
    assert [str(diagnostic) for diagnostic in result.diagnostics] == [
        f"{tmp_path}/b.yaml:1:1: cannot read: no such file or directory"
    ]


def test_directory_sections_merge_by_name(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "second.yaml").write_text(EXPORT, encoding="utf-8")

    config = load_config(tmp_path, environ=ENVIRON)

    assert set(config.exports) == {"vip", "second"}
    assert config.position("exports.second.tag") == Position(str(tmp_path / "second.yaml"), 7, 5)


def test_a_name_defined_in_two_files_names_both_places(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(
        "version: 1\nusers:\n  olena: {role: contributor}\n", encoding="utf-8"
    )

    with pytest.raises(ConfigInvalid) as caught:
        load_config(tmp_path, environ=ENVIRON)

    assert [str(diagnostic) for diagnostic in caught.value.diagnostics] == [
        f"{tmp_path}/b.yaml:3:3: users.olena: user 'olena' is defined twice:"
        f" at {tmp_path}/a.yaml:3:3 and at {tmp_path}/b.yaml:3:3"
    ]


def test_version_must_agree_across_files() -> None:
    def source(name: str, text: str) -> tuple[ParsedDocument, str]:
        return parse_document(text.encode(), file=name), "/config"

    merged = merge_documents(
        [source("a.yaml", "version: 1\n"), source("b.yaml", "x: 1\nversion: 2\n")]
    )

    assert [str(diagnostic) for diagnostic in merged.diagnostics] == [
        "b.yaml:2:1: version: version 2 differs from version 1 at a.yaml:1:1"
    ]


def test_a_directory_without_config_files_is_invalid_not_unreadable(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no config\n", encoding="utf-8")
    result = try_load_config(tmp_path, environ=ENVIRON)

    assert result.config is None
    assert not result.unreadable
    assert [str(diagnostic) for diagnostic in result.diagnostics] == [
        f"{tmp_path}:1:1: no *.yaml or *.yml files in this directory"
    ]


def test_unreadable_paths(tmp_path: Path) -> None:
    missing = try_load_config(tmp_path / "absent.yaml", environ=ENVIRON)
    assert missing.unreadable
    assert [str(diagnostic) for diagnostic in missing.diagnostics] == [
        f"{tmp_path}/absent.yaml:1:1: cannot read: no such file or directory"
    ]
    with pytest.raises(ConfigUnreadable):
        missing.unwrap()

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    special = try_load_config(fifo, environ=ENVIRON)
    assert special.unreadable
    assert special.diagnostics[0].message == "cannot read: not a regular file or a directory"


def test_load_config_raises_with_every_problem_sorted(tmp_path: Path) -> None:
    text = replaced("    role: admin\n", "    role: boss\n")
    text = replaced("      email: email\n", "      emial: email\n", text=text)
    text = replaced(
        "    query: SELECT email FROM customers\n",
        "    query: UPDATE customers SET x = 1\n",
        text=text,
    )

    with pytest.raises(ConfigInvalid) as caught:
        load_config(_write(tmp_path, text), environ=ENVIRON)

    lines = [diagnostic.line for diagnostic in caught.value.diagnostics]
    assert lines == sorted(lines) == [4, 14, 25, 26]
    assert str(caught.value).startswith("4 errors in 1 file:\n")


def test_loading_is_a_function_of_bytes_and_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    first = load_config(path, environ=ENVIRON)
    second = load_config(path, environ=dict(ENVIRON))

    assert first == second
    assert first.positions == second.positions
    assert load_config(path, environ={"HOME": "/elsewhere"}) != first


def test_revision_outside_git_is_a_digest_of_names_and_bytes(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _write(one, BASE)
    _write(two, BASE)

    revision = load_config(one, environ=ENVIRON).revision
    assert revision.startswith("sha256:")
    assert len(revision) == len("sha256:") + 12
    # The same files elsewhere have the same revision; other bytes another.
    assert load_config(two, environ=ENVIRON).revision == revision
    _write(two, BASE + "# changed\n")
    assert load_config(two, environ=ENVIRON).revision != revision
    files = [
        LoadedFile("x", str(one / "omnisync.yaml"), b"a"),
        LoadedFile("y", str(one / "b.yaml"), b"b"),
    ]
    assert content_digest(files, root=str(one)) == content_digest(files[::-1], root=str(one))


def test_revision_inside_git_is_the_commit_and_dirty_when_files_differ(tmp_path: Path) -> None:
    def git(*arguments: str) -> str:
        completed = subprocess.run(
            ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *arguments],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        return completed.stdout.strip()

    git("init", "--quiet")
    path = _write(tmp_path, BASE)
    git("add", "omnisync.yaml")
    git("commit", "--quiet", "-m", "config")
    commit = git("rev-parse", "--short", "HEAD")

    assert load_config(path, environ=ENVIRON).revision == f"git:{commit}"
    assert load_config(tmp_path, environ=ENVIRON).revision == f"git:{commit}"

    _write(tmp_path, BASE + "# edited\n")
    assert load_config(path, environ=ENVIRON).revision == f"git:{commit}+dirty"
    git("checkout", "--quiet", "omnisync.yaml")
    (tmp_path / "extra.yaml").write_text(EXPORT, encoding="utf-8")
    # An untracked file of a directory config makes it dirty; the single file is clean.
    assert load_config(tmp_path, environ=ENVIRON).revision == f"git:{commit}+dirty"
    assert load_config(path, environ=ENVIRON).revision == f"git:{commit}"


def _write(directory: Path, text: str) -> Path:
    path = directory / "omnisync.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_wrong_value_drops_its_entry_or_field_and_never_crashes_loading(tmp_path: Path) -> None:
    # A wrong required field leaves its entry out (references to it are not "unknown");
    # a wrong optional one, even inside a secret reference of the daemon, is only reported.
    text = replaced("    role: admin\n", "    role: root\n")
    text += (
        "daemon:\n  state: {kind: postgres, dsn: {env: 1bad}}\n  control: {token: {env: 2bad}}\n"
    )
    path = tmp_path / "omnisync.yaml"
    path.write_text(text, encoding="utf-8")

    paths = [diagnostic.path for diagnostic in try_load_config(path, environ=ENVIRON).diagnostics]
    assert paths == [
        "users.olena.role",
        "daemon.state",
        "daemon.state.dsn.env",
        "daemon.control.token.env",
    ]


def test_a_builder_bug_is_raised_not_taken_for_a_dropped_field() -> None:
    # Data the schema would refuse, handed over as if it had passed: building must fail
    # loudly rather than leave the entry out as if a wrong value had been dropped.
    data = {"version": 1, "segments": {"vip": {"source": "cdp", "colour": "red"}}}

    with pytest.raises(TypeError, match="colour"):
        build_config(
            data,
            positions={(): Position("c.yaml", 1, 1)},
            base_dirs={},
            environ={},
            home="/h",
            files=("c.yaml",),
            revision="",
            problems=frozenset(),
        )
