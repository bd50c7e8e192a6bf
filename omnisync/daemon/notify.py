"""The systemd notify protocol (``sd_notify``): ``KEY=VALUE`` datagrams to the socket in
``$NOTIFY_SOCKET`` (``@``: the abstract namespace). Without it every call is a no-op; a
failure to send is logged once and never stops the service. Each ``KEY=VALUE`` is one line
whatever its value holds: a config's text (an export named ``"vip\\nWATCHDOG=trigger"``
in a reload error) must never become an assignment of its own."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

from omnisync.masking import one_line

_log = logging.getLogger("omnisync.daemon.notify")


class Notifier:
    """Sends notify messages to one socket address, or nowhere when ``address`` is ``None``."""

    def __init__(self, address: str | None, *, watchdog_seconds: float | None = None) -> None:
        self.address = address
        #: How often to send ``WATCHDOG=1`` (half of ``WATCHDOG_USEC``), or ``None``.
        self.watchdog_interval = watchdog_seconds / 2 if watchdog_seconds else None
        self._socket: socket.socket | None = None
        self._failed = False
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Notifier:
        """Read ``NOTIFY_SOCKET``, and ``WATCHDOG_USEC`` when ``WATCHDOG_PID`` is this process."""
        watchdog: float | None = None
        usec = environ.get("WATCHDOG_USEC")
        if usec and environ.get("WATCHDOG_PID") in (None, "", str(os.getpid())):
            try:
                watchdog = int(usec) / 1_000_000
            except ValueError:
                _log.warning(
                    "ignoring WATCHDOG_USEC that is not a number",
                    extra={"event": "notify_watchdog_invalid"},
                )
        return cls(environ.get("NOTIFY_SOCKET") or None, watchdog_seconds=watchdog)

    def send(self, *lines: str) -> None:
        """Send ``lines`` as one datagram (e.g. ``"READY=1", "STATUS=running"``), each one
        line: control characters in it are escaped."""
        if self._socket is None or self.address is None:
            return
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            # backslashreplace: a path's undecodable bytes (surrogates) must not raise.
            datagram = "\n".join(map(one_line, lines)).encode(errors="backslashreplace")
            self._socket.sendto(datagram, target)
        except OSError as error:
            if not self._failed:
                _log.warning(
                    "cannot send to NOTIFY_SOCKET: %s",
                    error.strerror or error,
                    extra={"event": "notify_failed"},
                )
            self._failed = True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        """``RELOADING=1`` with the monotonic timestamp systemd ≥253 asks for."""
        microseconds = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={microseconds}", "STATUS=reloading config")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
