"""The daemon's claim on its state directory: before it writes anything there, the
daemon takes an exclusive ``flock`` on ``<state_dir>/daemon.lock`` for the life of the
process, so a second daemon on the same directory refuses to start."""

from __future__ import annotations

import io
from pathlib import Path

from omnisync.errors import OmnisyncError
from omnisync.state.locks import LockHeld, take_pid_lock

LOCK_FILENAME = "daemon.lock"


class StateDirectoryInUse(OmnisyncError):
    """Another live process holds the state directory's daemon lock; the message names the
    directory and, when known, the holder's pid."""


def claim_state_directory(state_dir: Path) -> io.FileIO:
    """Claim ``state_dir`` (which must exist) for this daemon: an exclusive, non-blocking
    ``flock`` on ``daemon.lock`` (:func:`~omnisync.state.locks.take_pid_lock`), held by the
    returned open lock file until it is closed (idempotent; its ``with`` block closes it)
    or the process ends: closing the only descriptor drops the ``flock``.

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
    return io.FileIO(descriptor, "r+")
