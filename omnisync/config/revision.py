"""Which revision of the config was loaded.

``git:<short commit>`` when the config is kept in a git repository: at least
one loaded file is tracked by the work tree that holds it. ``+dirty`` is
added when the loaded files are not exactly that commit's: a tracked file is
modified (staged or not), or an untracked or ignored file is loaded beside
tracked ones.

Otherwise ``sha256:<12 hex>`` over the files' names and bytes: outside any
work tree, without git, and also for a config none of whose files git tracks
(an ignored ``demo-data/`` or a scratch file inside some checkout is not
a revision of that checkout, dirty or not). git runs as a subprocess with a
short timeout.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

GIT_TIMEOUT_SECONDS = 3.0

# Keep git from prompting, and from taking index.lock for a read-only status
# (the config's repository may be in use by people committing to it).
# Paths are passed as literal pathspecs (a file called "*.yaml" matches only itself).
_GIT_ENVIRONMENT = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_LITERAL_PATHSPECS": "1",
}


@dataclass(frozen=True)
class LoadedFile:
    """One config file: the name it is shown by, its absolute path and its bytes."""

    name: str
    path: str
    content: bytes


def content_digest(files: Sequence[LoadedFile], *, root: str) -> str:
    """``sha256:`` and 12 hex digits over each file's path relative to ``root``, and bytes.

    Independent of where the config is checked out and of the order given.
    """
    digest = hashlib.sha256()
    for relative, content in sorted(
        (os.path.relpath(loaded.path, root), loaded.content) for loaded in files
    ):
        digest.update(relative.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(str(len(content)).encode() + b"\0" + content)
    return f"sha256:{digest.hexdigest()[:12]}"


def config_revision(files: Sequence[LoadedFile], *, root: str) -> str:
    """The revision of ``files``; ``root`` is the config's directory (git runs there)."""
    commit = _git(["rev-parse", "--short", "HEAD"], cwd=root)
    if commit is None:
        return content_digest(files, root=root)
    paths = [loaded.path for loaded in files]
    tracked = _git(["ls-files", "-z", "--", *paths], cwd=root) if paths else None
    if not tracked:
        # None of the files is in the repository (or git failed): not a revision of it.
        return content_digest(files, root=root)
    status = _git(
        ["status", "--porcelain", "--ignored", "--untracked-files=all", "--", *paths],
        cwd=root,
    )
    if status is None:
        return content_digest(files, root=root)
    return f"git:{commit}{'+dirty' if status else ''}"


def _git(arguments: list[str], *, cwd: str) -> str | None:
    """git's stdout, stripped, or ``None`` if git is missing, fails or takes too long."""
    try:
        completed = subprocess.run(
            ["git", *arguments],
            cwd=cwd,
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
            env={**os.environ, **_GIT_ENVIRONMENT},
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.decode("utf-8", "replace").strip()
