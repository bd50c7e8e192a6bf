"""The daemon's claim on its state directory: before it writes anything there, the
daemon takes an exclusive ``flock`` on ``<state_dir>/daemon.lock`` for the life of the
process, so a second daemon on the same directory refuses to start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from omnisync.errors import OmnisyncError
from omnisync.state.locks import LockHeld, take_pid_lock

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
    ``flock`` on ``daemon.lock`` (:func:`~omnisync.state.locks.take_pid_lock`).

    :class:`StateDirectoryInUse` at once when another process holds it; ``OSError`` when
    the lock file cannot be opened. Take it before writing anything else there: the
    holder's ``daemon.json`` and ``control.token`` are then never overwritten. The kernel
    drops the lock when the holder dies (SIGKILL included), so a lock file left behind
    never blocks a restart.
    """
    try:
        descriptor = take_pid_lock(state_dir / LOCK_FILENAME)
    except LockHeld as held:
        # No fallback to daemon.json when the holder has not written its pid yet: it
        # writes daemon.json later still, so the one there would be a dead predecessor's.
        named = f" (pid {held.holder})" if held.holder is not None else ""
        raise StateDirectoryInUse(
            f"another omnisync daemon{named} already uses the state directory {state_dir};"
            " stop it first, or give this one its own daemon.state_dir"
        ) from None
    return StateDirectoryClaim(state_dir, descriptor)
