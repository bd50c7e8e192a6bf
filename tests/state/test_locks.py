from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from omnisync.state.locks import ExportBusy, ExportLock


def test_a_second_holder_is_refused_and_told_who_runs(tmp_path: Path) -> None:
    with ExportLock(tmp_path, "vip"):
        with pytest.raises(
            ExportBusy, match=rf"'vip' is already running \(process {os.getpid()}\)"
        ):
            ExportLock(tmp_path, "vip").acquire()
        # Another export is independent.
        with ExportLock(tmp_path, "news"):
            pass
    # Released: it can be taken again.
    with ExportLock(tmp_path, "vip"):
        pass


def test_a_holder_that_has_not_written_its_pid_yet_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "locks").mkdir()
    with (tmp_path / "locks" / "vip.lock").open("w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)  # held, still empty: between its flock and its write
        with pytest.raises(ExportBusy, match=r"\(process unknown\)"):
            ExportLock(tmp_path, "vip").acquire()


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from omnisync.state.locks import ExportLock\n"
        f"ExportLock({str(tmp_path)!r}, 'vip').acquire()\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "locked"
    with pytest.raises(ExportBusy, match=str(child.pid)):
        ExportLock(tmp_path, "vip").acquire()
    child.send_signal(signal.SIGKILL)
    child.wait()
    with ExportLock(tmp_path, "vip"):
        pass


def test_release_is_idempotent_and_double_acquire_is_a_bug(tmp_path: Path) -> None:
    lock = ExportLock(tmp_path, "vip")
    lock.acquire()
    with pytest.raises(RuntimeError):
        lock.acquire()
    lock.release()
    lock.release()
