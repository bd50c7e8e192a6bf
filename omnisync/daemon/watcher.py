"""Watching the config for changes, the way people and tools really change it.

Directories are watched, never files: rename-over saves, a Kubernetes ConfigMap's
``..data`` symlink swap and ``git checkout`` replace directory entries. What counts:
config files (``*.yaml``/``*.yml``, or the config file's own name) and ``..*``
entries, never editor droppings; in a git repository also ``HEAD``, ``index``,
``packed-refs`` and branch refs, so a commit reloads too (the revision loses
``+dirty``). The watch moves when a symlink is re-pointed. Debouncing is the daemon's.
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

from omnisync.config.revision import git, work_tree

_log = logging.getLogger("omnisync.daemon.watcher")

_CONFIG_SUFFIXES = (".yaml", ".yml")
_TEMPORARY = re.compile(r"(\.sw[a-z]$)|(~$)|(^\.#)|(^4913$)|(\.tmp$)|(^\.?#.*#$)")

#: How often the watch loop wakes without events to re-resolve symlinks and notice a stop.
_WAKE_MILLISECONDS = 1000


@dataclass(frozen=True)
class WatchTarget:
    """A directory to watch and which of its entries matter: ``names`` (``None``: any
    config file), ``..*`` ones with ``configmap``, all of them with ``any_entry``."""

    directory: Path
    names: frozenset[str] | None
    configmap: bool
    any_entry: bool = False

    def matches(self, path: Path) -> bool:
        try:
            relative = path.relative_to(self.directory)
        except ValueError:
            return False
        if not relative.parts:
            return False
        entry = relative.parts[0]
        if self.configmap and entry.startswith(".."):
            return True
        if len(relative.parts) > 1:
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
    targets = [WatchTarget(link.resolve(), names=names, configmap=True)]
    # A symlinked config directory (a release switch, a mounted volume) changes when the
    # link itself is re-pointed: watch the directory that holds the link for its name.
    if link.is_symlink():
        targets.append(
            WatchTarget(link.parent.resolve(), names=frozenset({link.name}), configmap=False)
        )
    return tuple(targets)


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
        while not self._stop.is_set():
            config_targets = watch_targets(self.config_path)
            targets = (*config_targets, *git_targets(self.config_path))
            directories = sorted({str(target.directory) for target in targets})
            _log.debug(
                "watching %s",
                ", ".join(directories),
                extra={"event": "watch_started", "directories": directories},
            )
            try:
                for changes in watch(
                    *directories,
                    watch_filter=None,
                    debounce=200,
                    step=50,
                    stop_event=self._stop,
                    rust_timeout=_WAKE_MILLISECONDS,
                    yield_on_timeout=True,
                    raise_interrupt=False,
                    recursive=False,
                ):
                    relevant = relevant_changes(targets, changes)
                    if relevant:
                        self._on_change(relevant)
                    if watch_targets(self.config_path) != config_targets:
                        _log.info(
                            "the config path now resolves elsewhere; moving the watch",
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
