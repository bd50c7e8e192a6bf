"""Watching the config for changes, the way people and tools really change it.

Directories are watched, never files: rename-over saves, a Kubernetes ConfigMap's
``..data`` symlink swap and ``git checkout`` replace directory entries. What counts:
config files (``*.yaml``/``*.yml``, or the config file's own name) and ``..*``
entries, never editor droppings; in a git repository also ``HEAD``, ``index``,
``packed-refs`` and branch refs, so a commit reloads too (the revision loses
``+dirty``). A config file that is a link to another directory has that directory
watched too, for the file the link names (and each link on the way). The watch moves,
and a reload follows, when a symlink is re-pointed or a watched directory is replaced
(``mv conf.new conf``). Debouncing is the daemon's.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from watchfiles import Change, watch

from omnisync.config.loader import config_file_names
from omnisync.config.revision import git, work_tree

_log = logging.getLogger("omnisync.daemon.watcher")

_CONFIG_SUFFIXES = (".yaml", ".yml")
_TEMPORARY = re.compile(r"(\.sw[a-z]$)|(~$)|(^\.#)|(^4913$)|(\.tmp$)|(^\.?#.*#$)")

#: How often the watch loop wakes without events to re-resolve symlinks and notice a stop.
_WAKE_MILLISECONDS = 1000
#: Links followed from one config file at most (Linux's own limit), so a loop ends.
_MAX_LINKS = 40


@dataclass(frozen=True)
class WatchTarget:
    """A directory to watch and which of its entries matter: ``names`` (``None``: any
    config file), ``..*`` ones with ``configmap``, all of them with ``any_entry``."""

    directory: Path
    names: frozenset[str] | None
    configmap: bool
    any_entry: bool = False

    def matches(self, path: Path) -> bool:
        if path == self.directory or not path.is_relative_to(self.directory):
            return False
        entry, *below = path.relative_to(self.directory).parts
        if self.configmap and entry.startswith(".."):
            return True
        if below:
            return False
        if self.any_entry:
            return not entry.endswith(".lock")
        if is_temporary(entry):
            return False
        if self.names is not None:
            return entry in self.names
        return not entry.startswith(".") and entry.endswith(_CONFIG_SUFFIXES)


def is_temporary(name: str) -> bool:
    return bool(_TEMPORARY.search(name))


#: The files of a git directory that change when a commit is made or checked out.
_GIT_STATE = frozenset({"HEAD", "index", "packed-refs", "ORIG_HEAD"})


def git_targets(config_path: Path) -> tuple[WatchTarget, ...]:
    """The git directory entries whose change may change the config's revision, if any."""
    absolute = Path(os.path.abspath(config_path))
    directory = absolute if absolute.is_dir() else absolute.parent
    top = work_tree(str(directory)) if directory.is_dir() else None
    found = git(["rev-parse", "--absolute-git-dir", "--git-common-dir"], top=top) if top else None
    if top is None or not found:
        return ()
    git_dir, common = (Path(line) for line in os.fsdecode(found).splitlines()[:2])
    targets = [WatchTarget(git_dir.resolve(), names=_GIT_STATE, configmap=False)]
    heads = (Path(top) / common / "refs" / "heads").resolve()  # common may be relative to top
    if heads.is_dir():
        targets.append(WatchTarget(heads, names=None, configmap=False, any_entry=True))
    return tuple(targets)


def watch_targets(config_path: Path) -> tuple[WatchTarget, ...]:
    """What to watch for ``config_path`` as the file system is now (symlinks resolved)."""
    absolute = Path(os.path.abspath(config_path))
    directory = absolute.is_dir()
    link = absolute if directory else absolute.parent
    names = None if directory else frozenset({absolute.name})
    home = link.resolve()
    targets = [WatchTarget(home, names=names, configmap=True)]
    # A symlinked config directory (a release switch, a mounted volume) changes when the
    # link itself is re-pointed: watch the directory that holds the link for its name.
    if link.is_symlink():
        targets.append(
            WatchTarget(link.parent.resolve(), names=frozenset({link.name}), configmap=False)
        )
    try:
        files = config_file_names(str(absolute)) if directory else [str(absolute)]
    except OSError:
        files = []  # gone mid-swap: the next look finds what replaced it
    linked: dict[Path, set[str]] = {}
    for file in files:
        for entry in _links_followed(Path(file)):
            relative = entry.relative_to(home).parts if entry.is_relative_to(home) else ()
            # A ConfigMap's ``..data/`` entries: the ``..*`` ones in ``home`` cover them.
            configmap = bool(relative) and relative[0].startswith("..")
            # A dangling link's missing directory would fail the whole watch; once it
            # appears, the targets differ and the watch moves.
            if not configmap and entry.parent.is_dir() and os.access(entry.parent, os.R_OK):
                linked.setdefault(entry.parent, set()).add(entry.name)
    targets += (
        WatchTarget(parent, names=frozenset(entries), configmap=False)
        for parent, entries in sorted(linked.items())
    )
    return tuple(targets)


def _links_followed(path: Path) -> list[Path]:
    """Where the symlink chain of ``path`` leads, each step as a resolved directory and the
    entry in it: what the loader reads changes when any of them is edited or re-pointed."""
    steps: list[Path] = []
    for _ in range(_MAX_LINKS):
        try:
            pointed = os.readlink(path)
        except OSError:
            break  # not a link (or gone): the loader reads it, or says why not
        # Relative to the link's own directory; ``..`` only once links before it are resolved.
        pointed_at = path.parent.resolve() / pointed
        path = pointed_at.parent.resolve() / pointed_at.name
        steps.append(path)
    return steps


def _snapshot(config_path: Path) -> tuple[tuple[WatchTarget, ...], tuple[object, ...]]:
    """:func:`watch_targets`, with each target directory's identity (``None``: gone):
    another directory renamed to a watched path resolves the same, but is not the one
    watched."""
    targets = watch_targets(config_path)
    return targets, tuple(_identity(target.directory) for target in targets)


def _identity(directory: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(directory)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def relevant_changes(
    targets: Sequence[WatchTarget], changes: Iterable[tuple[Change, str]]
) -> tuple[str, ...]:
    """The changed paths, among ``changes``, that can change the config, sorted."""
    return tuple(
        sorted({path for _, path in changes if any(t.matches(Path(path)) for t in targets)})
    )


class ConfigWatcher:
    """A thread that calls ``on_change(paths)`` whenever the config may have changed."""

    def __init__(self, config_path: Path, on_change: Callable[[tuple[str, ...]], None]) -> None:
        self.config_path = config_path
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="config-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        watched: object = None  # the targets and directories of the last watch
        while not self._stop.is_set():
            try:
                config_targets, _ = snapshot = _snapshot(self.config_path)
                if watched is not None and snapshot != watched:
                    # A link re-pointed, a directory renamed over: what they hold now was
                    # never seen, and may have changed without an event here.
                    self._on_change((str(self.config_path),))
                watched = snapshot
                targets = (*config_targets, *git_targets(self.config_path))
                directories = sorted({str(target.directory) for target in targets})
                _log.debug(
                    "watching %s",
                    ", ".join(directories),
                    extra={"event": "watch_started", "directories": directories},
                )
                # watchfiles wakes every `step` ms to look at the stop event (with the
                # GIL): 50 ms cost an idle daemon ~1% of a core; the reload waits
                # out daemon.reload_debounce_seconds (1 s) after the change anyway.
                for changes in watch(
                    *directories,
                    watch_filter=None,
                    debounce=200,
                    step=200,
                    stop_event=self._stop,
                    rust_timeout=_WAKE_MILLISECONDS,
                    yield_on_timeout=True,
                    raise_interrupt=False,
                    recursive=False,
                ):
                    relevant = relevant_changes(targets, changes)
                    if relevant:
                        self._on_change(relevant)
                    if _snapshot(self.config_path) != snapshot:
                        _log.info(
                            "the config path now resolves elsewhere, or a directory of it"
                            " was replaced; moving the watch",
                            extra={"event": "watch_moved"},
                        )
                        break
            except Exception as error:
                # The directory vanished mid-swap, or inotify ran out of watches: a dead
                # watcher would silently end hot reload, so wait a little and start again.
                _log.warning(
                    "cannot watch the config directory: %s",
                    error,
                    extra={"event": "watch_failed"},
                )
                self._stop.wait(1.0)
