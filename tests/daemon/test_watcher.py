from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from watchfiles import Change

from omnisync.daemon.watcher import (
    ConfigWatcher,
    WatchTarget,
    is_temporary,
    relevant_changes,
    watch_targets,
)
from tests.daemon.runfunctions import wait_until


@pytest.mark.parametrize(
    "name",
    [
        "config.yaml.swp",
        ".config.yaml.swx",
        "config.yaml~",
        ".#config.yaml",
        "4913",
        "config.yaml.tmp",
        "#config.yaml#",
    ],
)
def test_editor_droppings_are_temporary(name):
    assert is_temporary(name)


@pytest.mark.parametrize(
    "name", ["config.yaml", "exports.yml", "..data", "..2026_01_01_00_00_00.123"]
)
def test_real_names_are_not_temporary(name):
    assert not is_temporary(name)


def test_directory_mode_counts_yaml_files_and_configmap_entries(tmp_path):
    (target,) = watch_targets(tmp_path)
    assert target == WatchTarget(tmp_path.resolve(), names=None, configmap=True)
    root = tmp_path.resolve()
    changes = {
        (Change.modified, str(root / "exports.yaml")),
        (Change.added, str(root / "..data")),
        (Change.added, str(root / "..2026_01_01" / "x.yaml")),
        (Change.added, str(root / "notes.txt")),
        (Change.added, str(root / ".hidden.yaml")),
        (Change.added, str(root / "exports.yaml.swp")),
        (Change.modified, str(root / ".git" / "index")),
        (Change.added, str(root / "sub" / "deep.yaml")),
        (Change.added, "/elsewhere/exports.yaml"),
    }
    assert relevant_changes([target], changes) == tuple(
        sorted(
            [
                str(root / "exports.yaml"),
                str(root / "..data"),
                str(root / "..2026_01_01" / "x.yaml"),
            ]
        )
    )


def test_file_mode_counts_only_that_file(tmp_path):
    path = tmp_path / "omnisync.yaml"
    path.write_text("version: 1\n")
    (target,) = watch_targets(path)
    root = tmp_path.resolve()
    changes = {
        (Change.modified, str(root / "omnisync.yaml")),
        (Change.modified, str(root / "other.yaml")),
    }
    assert relevant_changes([target], changes) == (str(root / "omnisync.yaml"),)


def test_a_symlinked_config_directory_also_watches_the_link(tmp_path):
    real = tmp_path / "releases" / "v1"
    real.mkdir(parents=True)
    link = tmp_path / "current"
    link.symlink_to(real)
    targets = watch_targets(link)
    assert targets == (
        WatchTarget(real.resolve(), names=None, configmap=True),
        WatchTarget(tmp_path.resolve(), names=frozenset({"current"}), configmap=False),
    )


def collecting_watcher(path: Path):
    seen: list[tuple[str, ...]] = []
    lock = threading.Lock()

    def on_change(paths):
        with lock:
            seen.append(paths)

    watcher = ConfigWatcher(path, on_change)
    watcher.start()
    return watcher, seen


def settled(directory: Path, seen, name: str = "probe.yaml") -> None:
    """Wait until the watch is live: touch a file until its event arrives."""

    def touched() -> bool:
        (directory / name).write_text("x")
        return name in flat(seen)

    wait_until(touched, interval=0.3, message=f"an event for {name}")


def flat(seen):
    return {Path(p).name for batch in list(seen) for p in batch}


def test_real_events_rename_save_and_editor_temp_files(tmp_path):
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    (config_dir / "a.yaml").write_text("version: 1\n")
    watcher, seen = collecting_watcher(config_dir)
    try:
        # Let the watch settle, by proving an event gets through first.
        settled(config_dir, seen)
        (config_dir / "a.yaml.swp").write_text("swap")
        (config_dir / "4913").write_text("")
        temporary = config_dir / "a.yaml.tmp"
        temporary.write_text("version: 1\n# edited\n")
        os.replace(temporary, config_dir / "a.yaml")
        wait_until(lambda: "a.yaml" in flat(seen), message="rename event")
        assert flat(seen) - {"probe.yaml"} == {"a.yaml"}
    finally:
        watcher.stop()


def test_a_moved_symlink_moves_the_watch(tmp_path):
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.mkdir()
    second.mkdir()
    link = tmp_path / "current"
    link.symlink_to(first)
    watcher, seen = collecting_watcher(link)
    try:
        settled(first, seen)
        staging = tmp_path / "current.new"
        staging.symlink_to(second)
        os.replace(staging, link)
        wait_until(lambda: "current" in flat(seen), message="link swap event")
        # Now the new directory is watched.
        settled(second, seen, "new.yaml")
    finally:
        watcher.stop()
