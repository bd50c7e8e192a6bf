"""Where a run's work comes from: the staged records, as plain batches and other work.

:func:`produce_work` runs :func:`~omnisync.engine.plainbatches.plain_batches`
over a staged export's work records. Mapping, fingerprinting and encoding
every member of a first run is most of a large run's Python work, and the
GIL lets one process use one core at a time, while the run's own threads
(creating batches, polling, tagging, writing the ledger) want it too. So for
an export with at least ``process_min_work`` work items the records are read
and turned into batches by a helper process, ``python -m
omnisync.engine.producer``, and the run's process only hands the batches on:
the two work on two cores.

The helper gets its job (the scratch database's path, the columns, the
export) as one pickled message on its standard input, reads the work records
from the staging's scratch database (read-only and immutable: the staging
writes no more to it), and writes one pickled message per
:data:`~omnisync.engine.plainbatches.Produced` (as plain tuples) to its
standard output, then an end mark. Messages are length-prefixed
(:class:`multiprocessing.connection.Connection`), so a write cut short by a
stop and continue never shifts the stream. The pipe is the backpressure: the
helper blocks while the run has not taken what it wrote. Both sides are ours
and the pipe is private, so pickle is safe here.

- The helper fails (an unreadable scratch file, a bug): its message comes
  back and :class:`ProducerFailed` is raised from the iterator; the run fails
  and nothing more is queued.
- The run stops early (a stop, a pipeline that takes no more, an error):
  closing the iterator kills the helper.
- The run is killed (SIGKILL included): the helper's next write finds the
  pipe closed and it exits. SIGINT, SIGTERM and SIGHUP are ignored by the helper: a
  Ctrl-C or a service stop signals the run's whole process group or cgroup,
  and the run, not its helper, decides how to stop.
"""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from urllib.parse import quote

from omnisync.config.model import Export
from omnisync.engine.plainbatches import OtherWork, PlainBatch, Produced, plain_batches
from omnisync.engine.staged import StagedExport, record_fingerprint, work_records_sql
from omnisync.fingerprint import Fingerprinter
from omnisync.inflight import PackedItems
from omnisync.omnisend.payloads import EncodedBatch
from omnisync.plainwrite import PlainEncoder

#: From how many work items on a run's records are produced by a helper process
#: (below it, starting one costs more than it saves).
PROCESS_MIN_WORK = 10_000

#: How the helper process is started: this interpreter, this package.
HELPER_COMMAND = (sys.executable, "-m", "omnisync.engine.producer")


class ProducerFailed(Exception):
    """The helper process that produces a run's work failed; the message says how."""


@dataclass(frozen=True)
class ProducerJob:
    """What the helper process is asked to do (pickled to its standard input)."""

    scratch: str
    columns: tuple[str, ...]
    export: Export
    fetch_size: int


@dataclass(frozen=True)
class _End:
    """Every record was produced."""


@dataclass(frozen=True)
class _Failure:
    """The helper could not go on: why (no personal data: error types and SQLite's words)."""

    reason: str


def produce_work(
    staged: StagedExport,
    *,
    export: Export,
    process_min_work: int = PROCESS_MIN_WORK,
    helper_command: Sequence[str] = HELPER_COMMAND,
) -> Generator[Produced, None, None]:
    """The work of ``staged``: batches of plain upserts and the records to go the general way.

    In a helper process (started with ``helper_command``) from
    ``process_min_work`` work items on (see the module), in this one below.
    Raises :class:`ProducerFailed` when the helper cannot start or fails.
    Close the iterator (or exhaust it) to end the helper.
    """
    if staged.counts.work < process_min_work:
        return plain_batches(
            staged.work_records(),
            encoder=PlainEncoder(export, staged.columns),
            fingerprint=staged.fingerprint,
        )
    job = ProducerJob(
        scratch=str(staged.scratch),
        columns=staged.columns,
        export=export,
        fetch_size=staged.fetch_size,
    )
    return _from_helper(job, helper_command)


def _from_helper(job: ProducerJob, command: Sequence[str]) -> Generator[Produced, None, None]:
    try:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
    except OSError as error:
        raise ProducerFailed(
            f"cannot start the process producing the run's work ({command[0]}): "
            f"{error.strerror or error}"
        ) from error
    assert process.stdin is not None and process.stdout is not None
    # Length-prefixed messages (multiprocessing's Connection loops over short
    # reads and writes): pickle streamed straight to and from the pipes lost
    # its place when a stop and continue (Ctrl-Z, a cgroup freeze) cut a
    # write short while the run was behind.
    job_pipe = Connection(os.dup(process.stdin.fileno()), readable=False)
    work_pipe = Connection(os.dup(process.stdout.fileno()), writable=False)
    process.stdin.close()
    process.stdout.close()
    try:
        try:
            with job_pipe:
                job_pipe.send_bytes(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        except BrokenPipeError:
            pass  # it ended at once: reading says so
        while True:
            try:
                message = pickle.loads(work_pipe.recv_bytes())  # noqa: S301 - our own helper
            except (EOFError, OSError):
                code = process.wait()
                raise ProducerFailed(
                    f"the process producing the run's work ended early (exit code {code})"
                ) from None
            if isinstance(message, tuple):
                yield _from_wire(message)
            elif isinstance(message, _End):
                return
            elif isinstance(message, _Failure):
                raise ProducerFailed(message.reason)
            else:
                raise ProducerFailed(f"unexpected message {type(message).__name__}")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        work_pipe.close()


#: What goes over the pipe per produced item: plain tuples of strings, bytes,
#: numbers and booleans, the cheapest for pickle to write and read (the run's
#: process reads a million contacts' worth).
_Wire = tuple[object, ...]


def _to_wire(produced: Produced) -> _Wire:
    if isinstance(produced, PlainBatch):
        batch = produced.batch
        return (batch.emails, batch.items, produced.fingerprints, produced.then_tag,
                produced.in_ledger, produced.intent.text, produced.intent.count)  # fmt: skip
    return (produced.records,)


def _from_wire(message: _Wire) -> Produced:
    if len(message) == 1:
        records = message[0]
        assert isinstance(records, tuple)
        return OtherWork(records)
    emails, items, fingerprints, then_tag, in_ledger, intent_text, intent_count = message
    return PlainBatch(
        EncodedBatch(emails, items),  # type: ignore[arg-type]
        fingerprints,  # type: ignore[arg-type]
        then_tag,  # type: ignore[arg-type]
        in_ledger,  # type: ignore[arg-type]
        PackedItems(intent_text, intent_count),  # type: ignore[arg-type]
    )


def run_job(job: ProducerJob, output: Connection) -> None:
    """The helper's work: produce ``job``'s work records as pickled messages on ``output``."""
    connection = sqlite3.connect(
        f"file:{quote(job.scratch)}?mode=ro&immutable=1", uri=True, isolation_level=None
    )
    try:
        fingerprinter = Fingerprinter.for_export(job.export)
        cursor = connection.execute(work_records_sql(len(job.columns), schema="main"))
        chunks = iter(lambda: cursor.fetchmany(job.fetch_size), [])
        for produced in plain_batches(
            chunks,
            encoder=PlainEncoder(job.export, job.columns),
            fingerprint=lambda record: record_fingerprint(record, fingerprinter),
        ):
            _send(output, _to_wire(produced))
        _send(output, _End())
    finally:
        connection.close()


def main() -> int:
    """``python -m omnisync.engine.producer``: one job from stdin, its work to stdout."""
    # The run decides when its helper ends (it kills it, or it goes and the
    # pipe closes). A Ctrl-C (or a closed terminal's hang-up) reaches the whole
    # process group, and systemd's stop signals the service's whole cgroup: the
    # run then stops at a batch boundary, and its helper must not die under it.
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    jobs = Connection(os.dup(sys.stdin.fileno()), writable=False)
    output = Connection(os.dup(sys.stdout.fileno()), readable=False)
    try:
        job = pickle.loads(jobs.recv_bytes())  # noqa: S301 - the run's own pipe
        if not isinstance(job, ProducerJob):
            raise TypeError(f"expected a ProducerJob, got {type(job).__name__}")
        run_job(job, output)
    except BrokenPipeError:
        return 0  # the run is gone (stopped or killed): nothing to tell anyone
    except Exception as error:  # every failure goes back to the run
        try:
            _send(output, _Failure(f"{type(error).__name__}: {error}"))
        except BrokenPipeError:
            return 0
        return 1
    finally:
        jobs.close()
        output.close()
    return 0


def _send(output: Connection, message: object) -> None:
    output.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    # Run as the module's importable self, not as ``__main__``: what it pickles
    # must name classes the run's process can find (omnisync.engine.producer._End).
    from omnisync.engine.producer import main as importable_main

    sys.exit(importable_main())
