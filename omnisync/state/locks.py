"""One run of an export at a time, across threads and processes; pid locks; private files
and directories.

An advisory ``flock`` on ``<state_dir>/locks/<export>.lock``: the kernel
releases it when the holder dies (SIGKILL included), so a crashed run never
leaves a stale lock behind, and whoever holds it may treat any run still
marked ``running`` in history as interrupted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Self

from omnisync.errors import OmnisyncError

#: Modes of what omnisync creates under the state directory.
PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_directory(path: str | os.PathLike[str]) -> None:
    """Create ``path`` (and missing parents) with mode 0700, whatever the umask; make an
    existing one of ours 0700 (what another user owns is left as it is)."""
    directory = Path(path)
    missing = [candidate for candidate in (directory, *directory.parents) if not candidate.exists()]
    for candidate in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by another process meanwhile
            candidate.mkdir(mode=PRIVATE_DIRECTORY_MODE)
            chmod_if_ours(candidate, PRIVATE_DIRECTORY_MODE)  # whatever the umask took away
    chmod_if_ours(directory, PRIVATE_DIRECTORY_MODE)


def chmod_if_ours(path: Path | int, mode: int) -> None:
    """Give ``path`` (or an open descriptor) ``mode`` when this user owns it (root reading
    a service's state leaves it as it is)."""
    status = os.stat(path)
    if status.st_uid == os.geteuid() and status.st_mode & 0o7777 != mode:
        os.chmod(path, mode)


class LockHeld(OmnisyncError):
    """Another process holds the lock :func:`take_pid_lock` tried; ``holder`` is the pid
    it wrote there, ``None`` when it has not yet."""

    def __init__(self, holder: int | None) -> None:
        super().__init__(f"held by process {'unknown' if holder is None else holder}")
        self.holder = holder


def take_pid_lock(path: Path) -> int:
    """An exclusive, non-blocking ``flock`` on ``path`` (made 0600, never opened through a
    symlink), which then holds this process's pid; the open descriptor, whose closing
    releases the lock.

    :class:`LockHeld` at once when another process holds it; ``OSError`` when the file
    cannot be opened or written. Nothing ever removes the file: removing it could let two
    processes hold locks on two different files of the same name.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        chmod_if_ours(descriptor, PRIVATE_FILE_MODE)  # whatever the umask took away
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(_written_pid(descriptor)) from None
        # At once, for the message of whoever is refused next.
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _written_pid(descriptor: int) -> int | None:
    """The pid the holder wrote there; ``None`` when there is none (between its ``flock``
    and its write)."""
    try:
        return int(os.pread(descriptor, 32, 0).decode("ascii"))
    except (OSError, ValueError):
        return None


class ExportBusy(OmnisyncError):
    """Another run of the export holds its lock; the message names the holder's pid."""


class ExportLock:
    """Exclusive, non-blocking lock on one export's runs. A context manager."""

    def __init__(self, state_dir: str | os.PathLike[str], export: str) -> None:
        self.export = export
        self.path = Path(state_dir) / "locks" / f"{export}.lock"
        self._descriptor: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`ExportBusy` at once (never waits)."""
        if self._descriptor is not None:
            raise RuntimeError("lock already held by this object")
        make_private_directory(self.path.parent)
        try:
            self._descriptor = take_pid_lock(self.path)
        except LockHeld as held:
            holder = "unknown" if held.holder is None else held.holder
            raise ExportBusy(
                f"export {self.export!r} is already running (process {holder}); "
                "wait for it to finish"
            ) from None

    def release(self) -> None:
        """Let go of the lock. Idempotent."""
        if self._descriptor is not None:
            descriptor, self._descriptor = self._descriptor, None
            os.close(descriptor)  # closing drops the flock

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
