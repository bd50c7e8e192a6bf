"""Notes left for the daemon's main loop, and the pipe that wakes it.

Signal handlers and the watcher never reload or stop anything themselves: they leave
a note (stop, reload, files changed) and write a byte to the pipe the main loop sleeps
on, so it acts at once in its own thread. Every note is safe from a signal handler.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time


class WakeUp:
    """Stop and reload requests, the time of the last file change, and the wake-up pipe."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self.stop_requested = False
        # A counter the signal handler alone writes and a mark the loop alone writes:
        # a flag both wrote could lose a SIGHUP landing between the loop's read and reset.
        self._hangups = 0
        self._hangups_seen = 0
        self._files_lock = threading.Lock()
        self._files_changed_at: float | None = None

    def request_stop(self) -> None:
        self.stop_requested = True
        self._wake()

    def request_reload(self) -> None:
        self._hangups += 1
        self._wake()

    def files_changed(self) -> None:
        with self._files_lock:
            self._files_changed_at = time.monotonic()
        self._wake()

    def take_reload_request(self) -> bool:
        """Whether a SIGHUP came since the last call (several count as one)."""
        hangups = self._hangups
        if hangups == self._hangups_seen:
            return False
        self._hangups_seen = hangups
        return True

    def reload_due(self, debounce: float) -> float | None:
        """Seconds until a reload is due for changed files (≤ 0: now, and the change is
        taken), ``None`` when no change is pending."""
        with self._files_lock:
            changed_at = self._files_changed_at
            if changed_at is None:
                return None
            remaining = changed_at + debounce - time.monotonic()
            if remaining <= 0:
                self._files_changed_at = None
            return remaining

    def sleep(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, less when a note arrives."""
        readable, _, _ = select.select([self._read], [], [], timeout)
        if readable:
            os.read(self._read, 4096)

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)

    def _wake(self) -> None:
        # A full pipe means the loop is awake already.
        with contextlib.suppress(BlockingIOError):
            os.write(self._write, b"!")
