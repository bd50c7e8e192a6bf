"""A git revision's config, written to a temporary directory to be loaded. The git shell.

The files of the config the loader would read in the revision (the file, or a
directory's own ``*.yaml``/``*.yml``; a symbolic link as its target in the revision) are
written (blobs, no filters) under a temporary directory at their own absolute path in
the work tree (``/repo/omnisync.yaml`` as ``<temporary>/repo/omnisync.yaml``), so every
relative path keeps its meaning, one that climbs out of the repository with ``../``
included. Git is read as :mod:`omnisync.config.revision` reads it: objects only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from omnisync.config.loader import config_file_names, is_config_file_name
from omnisync.config.revision import git, relative_to_work_tree, tree_entries, work_tree
from omnisync.errors import OmnisyncError


class RevisionUnavailable(OmnisyncError):
    """A revision cannot be read: no repository, no such revision, or a file of its config
    is a symbolic link that cannot be followed."""


@dataclass(frozen=True)
class Checkout:
    """A revision's config: load ``path``, the working tree's config path under the
    temporary directory ``root``."""

    path: str
    root: str
    label: str
    #: The revision holds no config at that path: there is nothing to load.
    empty: bool = False

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
    """The config at ``config_path`` as ``revision`` holds it, in a temporary directory;
    ``empty`` when the revision holds none there (a first config).

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
    # A directory where it leads in the revision (it may be a committed link, pointing
    # elsewhere than in the working tree); a file by its own name, which git follows.
    relative = relative_to_work_tree(absolute, top)
    if directory == absolute:
        relative = _followed(commit, relative, top=top, revision=revision)
    files = _config_files(
        commit, relative, directory=directory == absolute, top=top, revision=revision
    )
    label = f"{revision} (git:{short.strip()}{'' if files else ', no config'})"
    with tempfile.TemporaryDirectory(prefix="omnisync-diff-") as root:
        for path, content in files.items():
            # At ``absolute`` as given, not under ``top`` (a real path): the working tree's
            # config resolves its paths from there, through any symbolic link. Every entry
            # is ``relative`` or directly in it (the pathspec).
            within = path if relative == "." else path[len(relative) :].lstrip("/")
            target = root + os.path.normpath(os.path.join(absolute, within))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(content)
        yield Checkout(path=root + absolute, root=root, label=label, empty=not files)


@contextmanager
def copied(path: str, *, beside: str) -> Iterator[Checkout]:
    """A copy of the valid config at ``path`` (a file, or a directory's config files) in a
    temporary directory, standing where the config ``beside`` stands: its relative paths,
    ``../`` ones included, then resolve as they would beside ``beside`` (``--base-config``).
    """
    source = os.path.abspath(path)
    head = os.path.abspath(beside)
    directory = head if os.path.isdir(head) else os.path.dirname(head)
    if os.path.isdir(source):
        names, load = config_file_names(source), directory
    else:
        names, load = [source], os.path.join(directory, os.path.basename(source))
    with tempfile.TemporaryDirectory(prefix="omnisync-diff-") as root:
        os.makedirs(root + directory)
        for name in names:
            shutil.copyfile(name, os.path.join(root + directory, os.path.basename(name)))
        yield Checkout(path=root + load, root=root, label=path)


#: Symbolic links followed along one path before it is called a loop (as the kernel does).
_MAX_LINKS = 40


def _followed(commit: str, relative: str, *, top: str, revision: str) -> str:
    """``relative`` (a path in the work tree) with the symbolic links along it followed as
    ``commit`` holds them. Raises :class:`RevisionUnavailable` for a path that leaves the
    repository, a loop, or git failing."""
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    followed: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if not followed:
                raise RevisionUnavailable(
                    f"{relative} leads out of the repository in revision '{revision}'"
                )
            followed.pop()
            continue
        path = "/".join([*followed, part])
        entry = git(["ls-tree", "-z", commit, "--", path], top=top)
        if entry is None:
            raise RevisionUnavailable(f"cannot read {path} in revision '{revision}'")
        if not entry.startswith(b"120000 "):
            followed.append(part)
            continue
        target = git(["cat-file", "blob", f"{commit}:{path}"], top=top)
        links += 1
        if target is None or target.startswith(b"/") or links > _MAX_LINKS:
            raise RevisionUnavailable(
                f"{path} in revision '{revision}' is a symbolic link that cannot be followed"
                " inside the repository"
            )
        parts = [*os.fsdecode(target).split("/"), *parts]
    return "/".join(followed) or "."


def _config_files(
    commit: str, relative: str, *, directory: bool, top: str, revision: str
) -> dict[str, bytes]:
    """The bytes of the files the loader would read at ``relative`` in ``commit``, by path:
    the file, or the directory's own config files (not its subdirectories'). A symbolic
    link is read as its target in the commit (git follows it); one to a directory is
    skipped, as the loader skips it. Raises :class:`RevisionUnavailable` for a link that
    leaves the repository or leads nowhere.
    """
    pathspec = [] if relative == "." else ["--", f"{relative}/" if directory else relative]
    listing = git(["ls-tree", "-z", "--full-tree", commit, *pathspec], top=top)
    if listing is None:  # not "no config": that would make the head's admins approve
        raise RevisionUnavailable(f"cannot list {relative} in revision '{revision}'")
    names = [
        path
        for path in tree_entries(listing)
        if not directory or is_config_file_name(os.path.basename(path))
    ]
    if not names:
        return {}
    # One process for every file. Answers come in order: "<id> <type> <size>" (a blob or
    # a tree), "symlink|dangling|loop|notdir <size>" or "<name> missing", then the bytes.
    requests = b"".join(os.fsencode(f"{commit}:{name}") + b"\n" for name in names)
    answers = git(["cat-file", "--batch", "--follow-symlinks"], top=top, stdin=requests)
    if answers is None:
        raise RevisionUnavailable(f"cannot read {relative} in revision '{revision}'")
    files = {}
    for name in names:
        header, _, answers = answers.partition(b"\n")
        words = header.split(b" ")
        kind, body = words[-1], b""
        if kind not in (b"missing", b"ambiguous"):
            kind, size = words[-2], int(words[-1])
            body, answers = answers[:size], answers[size + 1 :]
        if kind == b"blob":
            files[name] = body
        elif kind == b"symlink":
            raise RevisionUnavailable(
                f"{name} in revision '{revision}' is a symbolic link out of the repository"
                f" ({os.fsdecode(body)}): git cannot give its content"
            )
        elif kind != b"tree":
            raise RevisionUnavailable(
                f"{name} in revision '{revision}' is a symbolic link that leads nowhere in it"
                f" ({kind.decode()})"
            )
    return files
