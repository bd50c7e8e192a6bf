from __future__ import annotations

import os
import socket
import time
import uuid

from omnisync.daemon.notify import Notifier


def receive(listener: socket.socket) -> list[str]:
    return listener.recv(4096).decode().split("\n")


def test_messages_reach_a_path_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(5)
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": path})
        notifier.ready("2 exports")
        assert receive(listener) == ["READY=1", "STATUS=2 exports"]
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        notifier.reloading()
        message = receive(listener)
        assert message[0] == "RELOADING=1"
        stamp = int(message[1].removeprefix("MONOTONIC_USEC="))
        assert stamp >= before
        notifier.stopping()
        assert receive(listener)[0] == "STOPPING=1"
        notifier.close()


def test_abstract_namespace_socket():
    name = f"omnisync-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(5)
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": "@" + name})
        notifier.watchdog()
        assert receive(listener) == ["WATCHDOG=1"]


def test_without_socket_everything_is_a_no_op():
    notifier = Notifier.from_environment({})
    assert notifier.address is None
    notifier.ready("x")
    notifier.stopping()


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_pid_only():
    mine = Notifier.from_environment(
        {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert mine.watchdog_interval == 5.0
    other = Notifier.from_environment({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None
    assert Notifier.from_environment({"WATCHDOG_USEC": "soon"}).watchdog_interval is None


def test_a_vanished_socket_never_raises(tmp_path):
    notifier = Notifier(str(tmp_path / "gone.sock"))
    notifier.ready("x")
    notifier.ready("y")
