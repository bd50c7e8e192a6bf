"""A run's work produced in a helper process: the same work, its failures, its end.

The helper is a real ``python -m omnisync.engine.producer`` process reading
the staging's scratch database; runs go to the emulator on loopback.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from omnisync.emulator import Emulator
from omnisync.engine.plainbatches import OtherWork, PlainBatch, Produced
from omnisync.engine.producer import ProducerFailed, produce_work
from omnisync.engine.results import Phase, RunCounts
from omnisync.engine.runner import ExportRunner, RunnerSettings
from omnisync.engine.staging import stage_export
from tests.engine.conftest import Setup
from tests.engine.helpers import (
    UPSERTS,
    comparable_contacts,
    emails_of,
    omnisync,
    omnisync_process,
    people,
    person,
    write_config,
    write_segment,
)

IN_PROCESS = 10**9  # a producer_min_work no export reaches
HELPER = 0  # every export's work from a helper process


def comparable(produced: Produced) -> tuple[object, ...]:
    if isinstance(produced, PlainBatch):
        batch = produced.batch
        return ("plain", batch.emails, batch.items, produced.fingerprints, produced.then_tag,
                produced.in_ledger)  # fmt: skip
    return ("other", produced.records)


def producer_processes() -> list[int]:
    """Pids of running work producers that are children of this process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"omnisync.engine.producer" in command and parent == os.getpid():
            found.append(int(entry.name))
    return found


@pytest.fixture
def plain_setup(setup: Setup) -> Setup:
    """The setup's export without consent (so first-run rows are plain), 420 members + oddities:
    a malformed e-mail, an over-long name and a later copy of a member's e-mail."""
    setup.rewrite(consent=False)
    rows = [
        *people(420),
        person(900, email="broken@"),
        person(901, first_name="x" * 300),
        person(902, email=" PERSON7@Example.com", first_name="Copy"),
    ]
    write_segment(setup.database, rows)
    return setup


def test_the_helper_produces_exactly_what_this_process_would(plain_setup: Setup) -> None:
    with stage_export(plain_setup.config(), "members") as staged:
        export = staged.export
        here = [
            comparable(p) for p in produce_work(staged, export=export, process_min_work=IN_PROCESS)
        ]
        there = [
            comparable(p) for p in produce_work(staged, export=export, process_min_work=HELPER)
        ]
    assert there == here
    kinds = [kind for kind, *_ in here]
    assert kinds.count("plain") == 5 and "other" in kinds  # 420 plain (100 a batch), 2 odd rows
    assert producer_processes() == []


def test_a_run_whose_work_a_helper_produced_delivers_it_all(plain_setup: Setup) -> None:
    settings = RunnerSettings(producer_min_work=HELPER)
    with plain_setup.store() as store, plain_setup.pool() as pool:
        runner = ExportRunner(
            plain_setup.config(), store=store, clients=pool, clock=plain_setup.clock,
            settings=settings,
        )  # fmt: skip
        first = runner.run("members", trigger="test")
        assert first.status == "succeeded", first.error
        assert (first.counts.upserted, first.counts.tagged, first.counts.invalid) == (420, 420, 2)
        second = runner.run("members", trigger="test")
        assert (second.counts.unchanged, second.counts.requests) == (420, 0)
    contacts = {contact["email"]: contact for contact in plain_setup.emulator.contacts()}
    assert len(contacts) == 420
    assert all(contact["tags"] == ["members"] for contact in contacts.values())
    assert contacts["person0@example.com"]["firstName"] == "Олена"
    assert contacts["person1@example.com"]["countryCode"] == "PL"
    assert plain_setup.emulator.welcome_messages() == []
    assert producer_processes() == []


class StopAtFirstAcknowledgement:
    """A progress listener that asks the run to stop once Omnisend acknowledged something."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def phase_started(self, phase: Phase, counts: RunCounts) -> None:
        pass

    def counts_updated(self, counts: RunCounts) -> None:
        if counts.upserted:
            self.stop.set()


@pytest.mark.parametrize("producer_min_work", [IN_PROCESS, HELPER])
def test_a_run_stopped_while_handing_batches_on_leaves_the_rest_pending(
    setup: Setup, producer_min_work: int
) -> None:
    setup.rewrite(consent=False)
    write_segment(setup.database, people(3000))
    settings = RunnerSettings(producer_min_work=producer_min_work, max_batches_in_flight=2)
    with setup.store() as store, setup.pool() as pool:
        runner = ExportRunner(
            setup.config(), store=store, clients=pool, clock=setup.clock, settings=settings
        )
        stop = threading.Event()
        first = runner.run(
            "members", trigger="test", stop=stop, progress=StopAtFirstAcknowledgement(stop)
        )
        assert first.status == "partial", first.error
        assert 0 < first.counts.upserted < 3000
        # Nothing handed on is lost from the count: what was not upserted is pending.
        assert first.counts.upserted + first.counts.pending >= 3000
        second = runner.run("members", trigger="test")
    assert second.status == "succeeded", second.error
    assert first.counts.upserted + second.counts.upserted == 3000
    assert len(setup.emulator.contacts()) == 3000
    assert producer_processes() == []


def test_a_helper_that_cannot_read_the_work_fails_the_iteration_and_says_why(
    plain_setup: Setup,
) -> None:
    with stage_export(plain_setup.config(), "members") as staged:
        staged.scratch.unlink()  # what the helper is to read is gone
        with pytest.raises(ProducerFailed, match="unable to open database file"):
            list(produce_work(staged, export=staged.export, process_min_work=HELPER))
    assert producer_processes() == []


def test_a_helper_that_cannot_start_fails_the_iteration_and_says_why(
    plain_setup: Setup, tmp_path: Path
) -> None:
    missing = tmp_path / "no-python"
    with stage_export(plain_setup.config(), "members") as staged:
        work = produce_work(
            staged, export=staged.export, process_min_work=HELPER, helper_command=[str(missing)]
        )
        with pytest.raises(ProducerFailed, match=f"cannot start .*{missing}.*No such file"):
            next(work)


def test_the_helper_lets_the_run_decide_on_interrupts_and_stop_signals(
    plain_setup: Setup,
) -> None:
    with stage_export(plain_setup.config(), "members") as staged:
        export = staged.export
        here = [
            comparable(p) for p in produce_work(staged, export=export, process_min_work=IN_PROCESS)
        ]
        with closing(produce_work(staged, export=export, process_min_work=HELPER)) as work:
            there = [comparable(next(work))]
            [helper] = producer_processes()
            os.kill(helper, signal.SIGINT)  # a Ctrl-C reaches the whole process group
            os.kill(helper, signal.SIGTERM)  # systemd stops the whole cgroup
            os.kill(helper, signal.SIGHUP)  # a terminal closed under a foreground daemon
            there.extend(comparable(p) for p in work)
    assert there == here


def test_a_helper_stopped_and_continued_while_the_pipe_is_full_loses_nothing(
    plain_setup: Setup,
) -> None:
    # Ctrl-Z then fg, or a cgroup freeze: a stop arriving while the helper is
    # blocked writing into a full pipe cuts that write short. Streamed pickle
    # lost its place then; every message must still arrive whole, in order.
    write_segment(plain_setup.database, people(3_000))
    with stage_export(plain_setup.config(), "members") as staged:
        export = staged.export
        here = [
            comparable(p) for p in produce_work(staged, export=export, process_min_work=IN_PROCESS)
        ]
        there = []
        with closing(produce_work(staged, export=export, process_min_work=HELPER)) as work:
            there.append(comparable(next(work)))
            [helper] = producer_processes()
            for produced in work:
                there.append(comparable(produced))
                time.sleep(0.02)  # the helper fills the pipe and blocks in a write
                os.kill(helper, signal.SIGSTOP)
                time.sleep(0.005)
                os.kill(helper, signal.SIGCONT)
    assert len(here) == 30
    assert there == here


def test_closing_the_work_early_ends_the_helper(plain_setup: Setup) -> None:
    with (
        stage_export(plain_setup.config(), "members") as staged,
        closing(produce_work(staged, export=staged.export, process_min_work=HELPER)) as work,
    ):
        assert isinstance(next(work), PlainBatch | OtherWork)
        assert len(producer_processes()) == 1
    assert producer_processes() == []


# -- a real `omnisync export run`, large enough for a helper, killed mid-way -------------

MEMBERS = 12_000  # over the default producer_min_work (10,000)


@pytest.fixture(scope="module")
def real_time_emulator() -> Iterator[Emulator]:
    # Real time: the export runs in another process on the system clock.
    with Emulator(api_keys=("test-key",), rate_limits=False, batch_delay=0.05) as running:
        yield running


def test_a_killed_run_takes_its_helper_with_it_and_a_restart_finishes(
    tmp_path: Path, real_time_emulator: Emulator
) -> None:
    emulator = real_time_emulator
    write_segment(tmp_path / "crm.sqlite", people(MEMBERS))
    config = write_config(
        tmp_path, base_url=emulator.base_url, database=tmp_path / "crm.sqlite",
        state_dir=tmp_path / "state", consent=False, requests_per_minute=6000,
        tags_per_minute=1200,
    )  # fmt: skip
    run = omnisync_process("export", "run", "members", "--config", str(config))
    helper = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and run.poll() is None:
        children = [pid for pid in _children_of(run.pid) if _is_producer(pid)]
        if children and len(emails_of(emulator.request_log(), UPSERTS)) >= 2000:
            helper = children[0]
            break
        time.sleep(0.01)
    assert helper is not None, "the run never had a helper while sending"
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=30)
    # The helper's next write meets a closed pipe: it ends on its own.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _is_producer(helper):
        time.sleep(0.05)
    assert not _is_producer(helper)
    restarted = omnisync("export", "run", "members", "--config", str(config))
    assert restarted.returncode == 0, restarted.stderr
    assert emulator.drain()
    contacts = comparable_contacts(emulator)
    assert len(contacts) == MEMBERS
    assert all(contact["tags"] == ["members"] for contact in contacts.values())


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == pid:
                children.append(int(entry.name))
    return children


def _is_producer(pid: int) -> bool:
    try:
        status = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return status != "Z" and b"omnisync.engine.producer" in command
