"""Which revision of the config was loaded, and reading git the same way everywhere.

``git:<short commit>`` when a loaded file is in the commit checked out (``HEAD``),
plus ``+dirty`` when a file's bytes differ from the commit's or a file outside it is
loaded beside committed ones; otherwise ``sha256:<12 hex>`` over names and bytes.

git refuses a repository another user owns (systemd's ``DynamicUser=``). omnisync
only *reads* objects with plumbing that runs no hook, filter, fsmonitor or pager and
takes no lock, so it names the work tree safe for those commands alone, and compares
bytes with the commit's blobs itself rather than run ``git status`` (which refreshes
the index and may run programs the repository's configuration names).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

GIT_TIMEOUT_SECONDS = 3.0

# No prompts, no locks (people may be committing to the config's repository), and
# literal pathspecs (a file "*.yaml" matches itself).
_GIT_ENVIRONMENT = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_LITERAL_PATHSPECS": "1",
}

#: Object ids by length: SHA-1 repositories, and SHA-256 ones.
_OBJECT_HASHES = {40: "sha1", 64: "sha256"}
_SYMLINK_MODE = b"120000"


@dataclass(frozen=True)
class LoadedFile:
    """One config file: the name it is shown by, its absolute path and its bytes."""

    name: str
    path: str
    content: bytes


def content_digest(files: Sequence[LoadedFile], *, root: str) -> str:
    """``sha256:`` and 12 hex digits over each file's path relative to ``root``, and bytes:
    independent of where the config is checked out and of the order given."""
    digest = hashlib.sha256()
    for relative, content in sorted(
        (os.path.relpath(loaded.path, root), loaded.content) for loaded in files
    ):
        digest.update(relative.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(str(len(content)).encode() + b"\0" + content)
    return f"sha256:{digest.hexdigest()[:12]}"


def config_revision(files: Sequence[LoadedFile], *, root: str) -> str:
    """The revision of ``files``; ``root`` is the config's directory."""
    top = work_tree(root)
    commit = git(["rev-parse", "HEAD", "--short", "HEAD"], top=top) if top else None
    if top is None or not commit:
        return content_digest(files, root=root)
    head, short = commit.decode("ascii", "replace").split()
    relative = {loaded.path: relative_to_work_tree(loaded.path, top) for loaded in files}
    listing = git(["ls-tree", "-r", "-z", "--full-tree", head, "--", *relative.values()], top=top)
    committed = tree_entries(listing or b"")
    if not any(path in committed for path in relative.values()):
        # None of the files is in the commit: this is not a revision of that repository.
        return content_digest(files, root=root)
    dirty = any(not _same_blob(loaded, committed.get(relative[loaded.path])) for loaded in files)
    return f"git:{short}{'+dirty' if dirty else ''}"


def tree_entries(listing: bytes) -> dict[str, tuple[bytes, str]]:
    """``git ls-tree -r -z`` output as ``{path: (mode, object id)}`` for its blobs."""
    entries: dict[str, tuple[bytes, str]] = {}
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, object_id = meta.split(b" ")
        if kind == b"blob":
            entries[os.fsdecode(path)] = (mode, object_id.decode("ascii"))
    return entries


def _same_blob(loaded: LoadedFile, entry: tuple[bytes, str] | None) -> bool:
    """Whether ``loaded`` is the blob ``entry`` names (a symbolic link: its target)."""
    if entry is None or len(entry[1]) not in _OBJECT_HASHES:
        return False
    mode, object_id = entry
    content = loaded.content
    if mode == _SYMLINK_MODE:
        try:
            content = os.fsencode(os.readlink(loaded.path))
        except OSError:
            return False
    digest = hashlib.new(_OBJECT_HASHES[len(object_id)], b"blob %d\0" % len(content))
    digest.update(content)
    return digest.hexdigest() == object_id


def relative_to_work_tree(path: str, top: str) -> str:
    """``path`` relative to the work tree ``top`` (a real path), for git pathspecs."""
    directory = os.path.realpath(os.path.dirname(path))
    return os.path.relpath(os.path.join(directory, os.path.basename(path)), top)


def work_tree(directory: str) -> str | None:
    """The top of the git work tree holding ``directory``, whoever owns it; ``None`` if none.
    Only this discovery (which reads no object) trusts any repository."""
    found = _run(["-c", "safe.directory=*", "rev-parse", "--show-toplevel"], cwd=directory)
    return (os.fsdecode(found.rstrip(b"\n")) or None) if found else None


def git(arguments: list[str], *, top: str, stdin: bytes = b"") -> bytes | None:
    """git's stdout for a read-only command in the work tree ``top``, given ``stdin``, or
    ``None`` on failure."""
    return _run(
        ["-c", f"safe.directory={top}", "-c", "core.fsmonitor=false", *arguments],
        cwd=top,
        stdin=stdin,
    )


def _run(arguments: list[str], *, cwd: str, stdin: bytes = b"") -> bytes | None:
    try:
        completed = subprocess.run(
            ["git", *arguments],
            cwd=cwd,
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
            env={**os.environ, **_GIT_ENVIRONMENT},
            input=stdin,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout if completed.returncode == 0 else None
