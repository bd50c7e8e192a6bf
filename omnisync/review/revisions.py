"""A git revision's config, written to a temporary directory to be loaded. The git shell.

The config's files in the revision are written (blobs, no filters) at the same
place relative to the work tree, so its relative paths keep their meaning. Git
is read as :mod:`omnisync.config.revision` reads it: objects only.
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
    """A revision's config under ``root``: load ``path``; it stands for the working tree's
    ``config_path`` in the repository at ``work_tree``."""

    path: str
    root: str
    work_tree: str
    config_path: str
    label: str

    def relocate(self, text: str) -> str:
        """A path in this checkout as the working tree's; other text unchanged."""
        for temporary, real in ((self.path, self.config_path), (self.root, self.work_tree)):
            if text == temporary or text.startswith(temporary + os.sep):
                return real + text[len(temporary) :]
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
            target = os.path.join(root, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(content)
        yield Checkout(
            path=os.path.join(root, relative),
            root=root,
            work_tree=top,
            config_path=absolute,
            label=f"{revision} (git:{short.strip()})",
        )
