"""Hostile clients of the control endpoint, and a daemon started under tighter limits.

Everything here talks to 127.0.0.1 only, and every loop is bounded in time.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.daemon.harness import DaemonProcess


@dataclass
class LimitedDaemon(DaemonProcess):
    """A daemon process started with a file limit, a umask and extra arguments of choice."""

    nofile: int | None = None
    umask: int | None = None
    extra_args: tuple[str, ...] = ()

    def command(self) -> list[str]:
        # Limits set by a small launcher that then execs the daemon (same pid):
        # no preexec_fn in a test process that runs threads.
        launcher = (
            "import os, resource, sys\n"
            "nofile, umask = int(sys.argv[1]), int(sys.argv[2])\n"
            "if nofile: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))\n"
            "if umask >= 0: os.umask(umask)\n"
            "os.execv(sys.executable, [sys.executable, *sys.argv[3:]])\n"
        )
        return [
            sys.executable,
            "-c",
            launcher,
            str(self.nofile or 0),
            str(-1 if self.umask is None else self.umask),
            *self.daemon_arguments(),
            *self.extra_args,
        ]

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = str(self.http.base_url).removeprefix("http://").rstrip("/").rpartition(":")
        return host, int(port)

    def threads(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        raise AssertionError("no Threads line")

    def open_files(self) -> int:
        assert self.process is not None
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


def raw_exchange(address: tuple[str, int], data: bytes, *, timeout: float) -> bytes:
    """Send ``data`` on a fresh connection; everything answered until the server closes
    or ``timeout`` passes (what arrived by then)."""
    received = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection(address, timeout=timeout) as connection:
        connection.sendall(data)
        while (left := deadline - time.monotonic()) > 0:
            connection.settimeout(left)
            try:
                chunk = connection.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
            if b"\r\n\r\n" in received and _complete(received):
                break
    return received


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def seconds_until_closed(connection: socket.socket, *, limit: float, drip: bytes = b"") -> float:
    """How long until the server closes ``connection`` (at most ``limit``: then ``limit``).

    ``drip``: bytes sent every half second meanwhile (a slowloris), never a whole request.
    """
    started = time.monotonic()
    connection.settimeout(0.5)
    while (elapsed := time.monotonic() - started) < limit:
        if drip:
            try:
                connection.sendall(drip)
            except OSError:
                return elapsed
        try:
            chunk = connection.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
        if not chunk:
            return time.monotonic() - started
    return limit


@dataclass
class Swarm:
    """``idle`` connections that send nothing and ``slow`` ones that send a request's head
    a header line a second, never finishing it; each one closed by the server is opened
    again at once, until :meth:`stop` (or ``duration`` seconds). Runs in one thread."""

    address: tuple[str, int]
    idle: int
    slow: int
    duration: float = 60.0
    opened: int = 0
    closed_by_server: int = 0
    open_now: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Swarm:
        self._thread = threading.Thread(target=self._run, name="swarm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> Swarm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _connect(self, selector: selectors.BaseSelector, kind: str) -> None:
        connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        connection.setblocking(False)
        code = connection.connect_ex(self.address)
        if code not in (0, errno.EINPROGRESS):
            connection.close()
            return
        self.opened += 1
        state = {"kind": kind, "sent": 0, "next": time.monotonic()}
        selector.register(connection, selectors.EVENT_READ, state)

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        ends = time.monotonic() + self.duration
        for _ in range(self.idle):
            self._connect(selector, "idle")
        for _ in range(self.slow):
            self._connect(selector, "slow")
        try:
            while not self._stop.is_set() and time.monotonic() < ends:
                now = time.monotonic()
                for key, _ in selector.select(timeout=0.1):
                    connection = key.fileobj
                    assert isinstance(connection, socket.socket)
                    try:
                        data = connection.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:  # closed by the server: come back at once
                        selector.unregister(connection)
                        connection.close()
                        self.closed_by_server += 1
                        self._connect(selector, key.data["kind"])
                for key in list(selector.get_map().values()):
                    state = key.data
                    if state["kind"] == "slow" and now >= state["next"]:
                        state["next"] = now + 1.0
                        line = (
                            b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            if state["sent"] == 0
                            else b"X-Slow: %d\r\n" % state["sent"]
                        )
                        try:
                            key.fileobj.send(line)  # type: ignore[union-attr]
                        except OSError:
                            continue  # not connected yet: next second
                        state["sent"] += 1
                self.open_now = len(selector.get_map())
        finally:
            for key in list(selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            selector.close()
