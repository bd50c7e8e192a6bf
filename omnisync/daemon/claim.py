"""The daemon's claim on its state directory: before it writes anything there, the
daemon takes an exclusive ``flock`` on ``<state_dir>/daemon.lock`` for the life of the
process, so a second daemon on the same directory refuses to start."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Self

from omnisync.daemon.discovery import read_info
from omnisync.errors import OmnisyncError
from omnisync.state.locks import PRIVATE_FILE_MODE, chmod_if_ours

LOCK_FILENAME = "daemon.lock"


class StateDirectoryInUse(OmnisyncError):
    """Another live process holds the state directory's daemon lock; the message names the
    directory and, when known, the holder's pid."""


class StateDirectoryClaim:
    """This process's exclusive hold on a state directory, from
    :func:`claim_state_directory` until :meth:`release` (or the process's end). A context
    manager that releases on exit."""

    def __init__(self, state_dir: Path, descriptor: int) -> None:
        self.state_dir = state_dir
        self._descriptor: int | None = descriptor

    def release(self) -> None:
        """Let go of the state directory. Idempotent."""
        if self._descriptor is not None:
            descriptor, self._descriptor = self._descriptor, None
            os.close(descriptor)  # closing the only descriptor drops the flock

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def claim_state_directory(state_dir: Path) -> StateDirectoryClaim:
    """Claim ``state_dir`` (which must exist) for this daemon: an exclusive, non-blocking
    ``flock`` on ``daemon.lock`` (made 0600), holding this process's pid.

    :class:`StateDirectoryInUse` at once when another process holds it; ``OSError`` when
    the lock file cannot be opened. Take it before writing anything else there: the
    holder's ``daemon.json`` and ``control.token`` are then never overwritten. The kernel
    drops the lock when the holder dies (SIGKILL included), so a lock file left behind
    never blocks a restart; nothing ever removes it (removing it could let two processes
    hold locks on two different files of the same name).
    """
    path = state_dir / LOCK_FILENAME
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        chmod_if_ours(descriptor, PRIVATE_FILE_MODE)  # whatever the umask took away
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(descriptor, state_dir)
        os.close(descriptor)
        named = f" (pid {holder})" if holder is not None else ""
        raise StateDirectoryInUse(
            f"another omnisync daemon{named} already uses the state directory {state_dir};"
            " stop it first, or give this one its own daemon.state_dir"
        ) from None
    except BaseException:
        os.close(descriptor)
        raise
    # For the message of a daemon refused later: written at once, while daemon.json
    # may still be a killed predecessor's.
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
    return StateDirectoryClaim(state_dir, descriptor)


def _lock_holder(descriptor: int, state_dir: Path) -> int | None:
    """The pid of the daemon holding ``daemon.lock`` (open as ``descriptor``): the one it
    wrote there, else the one in ``daemon.json``; ``None`` when neither can be read (the
    holder has only just taken the lock)."""
    try:
        return int(os.pread(descriptor, 32, 0).decode("ascii").strip())
    except (OSError, ValueError):
        pass
    info = read_info(state_dir)
    return info.pid if info is not None else None
