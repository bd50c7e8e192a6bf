"""A git revision's config, written to a temporary directory to be loaded. The git shell.

The config's files in the revision are written (blobs, no filters) under a temporary
directory at their own absolute path in the work tree (``/repo/omnisync.yaml`` as
``<temporary>/repo/omnisync.yaml``), so every relative path keeps its meaning, one
that climbs out of the repository with ``../`` included. Git is read as
:mod:`omnisync.config.revision` reads it: objects only.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from omnisync.config.revision import git, relative_to_work_tree, tree_entries, work_tree
from omnisync.errors import OmnisyncError


class RevisionUnavailable(OmnisyncError):
    """A revision cannot be read: no repository, no such revision, or no config in it."""


@dataclass(frozen=True)
class Checkout:
    """A revision's config: load ``path``; it stands for the working tree's ``config_path``,
    and is ``config_path`` under the temporary directory ``root``."""

    path: str
    root: str
    config_path: str
    label: str

    def relocate(self, text: str) -> str:
        """A path under this checkout's ``root`` as the same path without it; other text,
        an absolute path the config wrote included, unchanged.

        A relative path resolves in the checkout as it does in the working tree, under
        ``root``: inside the repository or out of it with ``../``.
        """
        if text == self.root:
            return os.sep  # a path that climbed to the top of the file system
        if text.startswith(self.root + os.sep):
            return text[len(self.root) :]
        return text


@contextmanager
def checkout(config_path: str, revision: str) -> Iterator[Checkout]:
    """The config at ``config_path`` as ``revision`` holds it, in a temporary directory.

    Raises :class:`RevisionUnavailable`.
    """
    absolute = os.path.abspath(config_path)
    directory = absolute if os.path.isdir(absolute) else os.path.dirname(absolute)
    top = work_tree(directory)  # None for a directory that does not exist, too
    if top is None:
        raise RevisionUnavailable(
            f"{config_path} is not in a git work tree: cannot read {revision}"
        )
    resolved = git(["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], top=top)
    if not resolved:
        raise RevisionUnavailable(f"no revision '{revision}' in the repository at {top}")
    commit = resolved.decode("ascii").strip()
    short = (git(["rev-parse", "--short", commit], top=top) or commit[:7].encode()).decode()
    relative = relative_to_work_tree(absolute, top)
    pathspec = [] if relative == "." else ["--", relative]
    listing = git(["ls-tree", "-r", "-z", "--full-tree", commit, *pathspec], top=top)
    entries = tree_entries(listing or b"")
    if not entries:
        raise RevisionUnavailable(f"revision '{revision}' holds no {relative}")
    with tempfile.TemporaryDirectory(prefix="omnisync-diff-") as root:
        for path, (_, object_id) in entries.items():
            content = git(["cat-file", "blob", object_id], top=top)
            if content is None:
                raise RevisionUnavailable(f"cannot read {path} in revision '{revision}'")
            # At ``absolute`` as given, not under ``top`` (a real path): the working tree's
            # config resolves its paths from there, through any symbolic link. Every entry
            # is ``relative`` or under it (the pathspec).
            within = path if relative == "." else path[len(relative) :].lstrip("/")
            target = root + os.path.normpath(os.path.join(absolute, within))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(content)
        yield Checkout(
            path=root + absolute,
            root=root,
            config_path=absolute,
            label=f"{revision} (git:{short.strip()})",
        )
