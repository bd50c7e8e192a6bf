"""A config changed the ways deployments change it, beyond an edit in place: a new
directory renamed over the old one, a file that is a symlink into another directory."""

from __future__ import annotations

import os

from omnisync.daemon.watcher import WatchTarget, watch_targets
from tests.daemon.harness import replace_file
from tests.daemon.yamlconfig import ExportYaml


def split(text: str) -> tuple[str, str]:
    """A rendered config as two files: everything but the exports, and the exports."""
    head, _, exports = text.partition("exports:\n")
    return head, "version: 1\nexports:\n" + exports


def test_a_linked_config_file_has_its_target_watched_but_no_configmap_directory(tmp_path):
    config_dir, shared = tmp_path / "conf", tmp_path / "shared"
    config_dir.mkdir()
    shared.mkdir()
    (shared / "exports.yaml").write_text("exports: {}\n")
    (shared / "hop.yaml").symlink_to(shared / "exports.yaml")
    (config_dir / "exports.yaml").symlink_to(shared / "hop.yaml")
    (config_dir / "main.yaml").write_text("version: 1\n")
    # A dangling link: no watch of a directory that is not there (it would fail them all).
    (config_dir / "gone.yaml").symlink_to(tmp_path / "nowhere" / "gone.yaml")
    # A ConfigMap's layout: its ``..*`` entries are watched in the directory already.
    data = config_dir / "..2026_01_01"
    data.mkdir()
    (data / "more.yaml").write_text("users: {}\n")
    (config_dir / "..data").symlink_to(data.name)
    (config_dir / "more.yaml").symlink_to("..data/more.yaml")
    assert watch_targets(config_dir) == (
        WatchTarget(config_dir.resolve(), names=None, configmap=True),
        WatchTarget(
            shared.resolve(), names=frozenset({"hop.yaml", "exports.yaml"}), configmap=False
        ),
    )


def test_a_config_directory_renamed_over_is_reloaded_and_watched(setup):
    config_dir = setup.root / "conf"
    config_dir.mkdir()
    (config_dir / "omnisync.yaml").write_text(setup.render(ExportYaml("a")))
    daemon = setup.daemon(config_dir).start()
    try:
        before = daemon.status()["config"]["revision"]
        replacement = setup.root / "conf.new"
        replacement.mkdir()
        (replacement / "omnisync.yaml").write_text(setup.render(ExportYaml("a"), ExportYaml("b")))
        os.rename(config_dir, setup.root / "conf.old")
        os.rename(replacement, config_dir)
        after = daemon.wait_status(lambda s: "b" in s["exports"], message="the new directory")
        assert after["last_reload"]["ok"] and after["config"]["revision"] != before
        # The new directory is the one watched now.
        replace_file(
            config_dir / "omnisync.yaml",
            setup.render(ExportYaml("a"), ExportYaml("b"), ExportYaml("c")),
        )
        daemon.wait_status(lambda s: "c" in s["exports"], message="an edit in the new directory")
    finally:
        assert daemon.stop() == 0


def test_an_edit_to_a_linked_file_in_another_directory_is_reloaded(setup):
    config_dir, shared = setup.root / "conf", setup.root / "shared"
    config_dir.mkdir()
    shared.mkdir()
    main, exports = split(setup.render(ExportYaml("a")))
    (config_dir / "main.yaml").write_text(main)
    (shared / "exports.yaml").write_text(exports)
    (config_dir / "exports.yaml").symlink_to(shared / "exports.yaml")
    daemon = setup.daemon(config_dir).start()
    try:
        assert set(daemon.status()["exports"]) == {"a"}
        (shared / "exports.yaml").write_text(split(setup.render(ExportYaml("b")))[1])
        daemon.wait_status(lambda s: set(s["exports"]) == {"b"}, message="the edited target")
    finally:
        assert daemon.stop() == 0


def test_an_edit_to_the_target_of_a_linked_config_file_is_reloaded(setup):
    etc, repository = setup.root / "etc", setup.root / "repo"
    etc.mkdir()
    repository.mkdir()
    (repository / "omnisync.yaml").write_text(setup.render(ExportYaml("a")))
    (etc / "omnisync.yaml").symlink_to(repository / "omnisync.yaml")
    daemon = setup.daemon(etc / "omnisync.yaml").start()
    try:
        assert set(daemon.status()["exports"]) == {"a"}
        replace_file(repository / "omnisync.yaml", setup.render(ExportYaml("b")))
        daemon.wait_status(lambda s: set(s["exports"]) == {"b"}, message="the edited target")
    finally:
        assert daemon.stop() == 0
