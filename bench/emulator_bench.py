"""Benchmark: the CPU the emulator process spends per contact of an export's traffic.

Not a test (never run by the suite): it prints figures. It starts ``omnisync
emulator --api-key K --no-rate-limits --port 0`` as its own process (as
``bench/export_bench.py`` does) and, each round, sends what a first export
run of ``--contacts`` new contacts sends, from ``--threads`` keep-alive httpx
clients on as many threads:

1. ``POST /api/batches`` with 100 contacts each, shaped as
   ``omnisync.omnisend.payloads`` shapes them (an e-mail identifier with
   ``sendWelcomeMessage: false``, names, city, country and its code, two
   custom properties); after every ``--list-every`` batches, one
   ``GET /api/batches?endpoint=contacts&limit=250&offset=0``, the listing
   ``omnisync.omnisend.batches.find_batches`` asks for;
2. ``POST /_emulator/drain`` (the engine tags only after its batches are done);
3. ``POST /api/contacts/tags`` with 250 e-mails each, then a drain again.

It prints the emulator's user + system CPU seconds for the round (from
``/proc``, so the machine's other load does not count, while it does in wall
time) and µs per contact. There is no target to chase: the emulator runs on
the standard library's ``http.server`` with one validation path, and this
shows how far it stays from limiting ``export_bench.py`` (about 30 µs per
contact here: a third of a core at that benchmark's 10,000 contacts/s).
``--batch-delay 0 --request-log-limit 1000`` runs the emulator as
``export_bench.py`` does.

    .venv/bin/python bench/emulator_bench.py                     # 3 rounds of 100,000
    .venv/bin/python bench/emulator_bench.py --batch-delay 0 --request-log-limit 1000
    .venv/bin/python bench/emulator_bench.py --py-spy /tmp/emulator.txt  # raw GIL-holding stacks
    .venv/bin/python bench/emulator_bench.py --perf /tmp/perf.data       # native, kernel included
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from omnisync.cli.emulator import announced_base_url

API_KEY = "emulator-bench-key"
HEADERS = {
    "Authorization": f"Omnisend-API-Key {API_KEY}",
    "Omnisend-Version": "2026-03-15",
    "Content-Type": "application/json",
}
BATCH_SIZE = 100
TAG_CALL_SIZE = 250
LISTING = {"endpoint": "contacts", "limit": "250", "offset": "0"}

FIRST_NAMES = ("Олена", "Łukasz", "Rūta", "Jürgen", "Íñigo", "Emily", "Taras", "Zoë")
LAST_NAMES = ("Коваленко", "Wójcik", "Žukauskaitė", "Müller", "Peña", "O'Connor", "Melnyk")
CITIES = ("Київ", "Kraków", "Vilnius", "München", "A Coruña", "London", "Lviv", "Austin")
COUNTRIES = (
    ("Ukraine", "UA"),
    ("Poland", "PL"),
    ("Lithuania", "LT"),
    ("Germany", "DE"),
    ("Spain", "ES"),
    ("United Kingdom", "GB"),
)
TIERS = ("bronze", "silver", "gold", "platinum")


class EmulatorProcess:
    """``omnisync emulator`` in its own process, optionally watched by a profiler."""

    def __init__(
        self,
        *,
        batch_delay: str | None,
        log_limit: int | None,
        py_spy: Path | None = None,
        perf: Path | None = None,
        wrapper: Path | None = None,
    ) -> None:
        # A wrapper script (run instead of ``-m omnisync``, with the same
        # arguments) may instrument the process, e.g. time its collections.
        launcher = [str(wrapper)] if wrapper is not None else ["-m", "omnisync"]
        command = [sys.executable, *launcher, "emulator", "--api-key", API_KEY]
        command += ["--no-rate-limits", "--port", "0"]
        if batch_delay is not None:
            command += ["--batch-delay", batch_delay]
        if log_limit is not None:
            command += ["--request-log-limit", str(log_limit)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        base_url = announced_base_url(line)
        if base_url is None:
            raise SystemExit(f"the emulator did not start: {line!r}")
        self.base_url = base_url
        self.root = self.base_url.removesuffix("/api")
        self.profiler: subprocess.Popen[bytes] | None = None
        pid = str(self.process.pid)
        if py_spy is not None:
            # --gil: only samples of the thread holding the GIL, i.e. Python CPU time.
            spy = str(Path(sys.executable).with_name("py-spy"))
            options = ["-r", "200", "-f", "raw", "--threads", "--gil", "-o", str(py_spy)]
            self.profiler = subprocess.Popen(
                [spy, "record", *options, "--pid", pid],
                stdout=subprocess.DEVNULL,
            )
        elif perf is not None:
            self.profiler = subprocess.Popen(
                ["perf", "record", "-F", "499", "-g", "-o", str(perf), "-p", pid],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        if self.profiler is not None:
            time.sleep(1.0)  # let it attach before the traffic starts

    def _stat(self, task: str = "") -> list[str]:
        path = f"/proc/{self.process.pid}/{task}stat"
        return Path(path).read_text().rsplit(")", 1)[1].split()

    def cpu_seconds(self) -> float:
        """User + system CPU the emulator process has used so far (from /proc)."""
        fields = self._stat()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def thread_cpu_seconds(self) -> dict[int, float]:
        """CPU seconds of each live thread by id (oldest first: main, worker, server, ...)."""
        seconds: dict[int, float] = {}
        for task in sorted(os.listdir(f"/proc/{self.process.pid}/task"), key=int):
            try:
                fields = self._stat(f"task/{task}/")
            except OSError:
                continue  # a connection thread that just ended
            seconds[int(task)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return seconds

    def memory(self) -> tuple[int, float]:
        """Minor page faults so far, and resident MB now (each fresh page costs CPU)."""
        fields = self._stat()
        return int(fields[7]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 1e6

    def drain(self) -> bool:
        """Wait until the emulator has applied all queued work; ``False`` on its timeout."""
        answer = httpx.post(f"{self.root}/_emulator/drain", json={"timeout": 120}, timeout=130)
        return bool(answer.json().get("idle"))

    def stop(self) -> None:
        if self.profiler is not None:
            self.profiler.send_signal(signal.SIGINT)
            self.profiler.wait(timeout=60)
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def email(number: int, prefix: str) -> str:
    return f"{prefix}{number:07d}@example.com"


def contact_item(number: int, prefix: str) -> bytes:
    """One batch item, encoded the way ``omnisync.omnisend.payloads`` encodes it."""
    country, code = COUNTRIES[number % len(COUNTRIES)]
    identifier = {"type": "email", "id": email(number, prefix), "sendWelcomeMessage": False}
    body = {
        "identifiers": [identifier],
        "city": CITIES[number % len(CITIES)],
        "country": country,
        "countryCode": code,
        "firstName": FIRST_NAMES[number % len(FIRST_NAMES)],
        "lastName": LAST_NAMES[number % len(LAST_NAMES)],
        "customProperties": {
            "loyalty_tier": TIERS[number % len(TIERS)],
            "lifetime_value": round(number * 1.37 % 5000, 2),
        },
    }
    return orjson.dumps(body)


def batch_body(start: int, prefix: str) -> bytes:
    items = b",".join(contact_item(number, prefix) for number in range(start, start + BATCH_SIZE))
    return b'{"endpoint":"contacts","method":"POST","items":[' + items + b"]}"


def tags_body(start: int, end: int, prefix: str) -> bytes:
    return orjson.dumps(
        {"emails": [email(n, prefix) for n in range(start, end)], "tags": ["bench"]}
    )


@dataclass(frozen=True)
class Round:
    contacts: int
    requests: int
    wall_seconds: float
    cpu_seconds: float
    #: CPU of the batches and listings (applying included), then of the tag calls.
    batches_cpu_seconds: float
    tags_cpu_seconds: float
    page_faults: int
    rss_mb: float
    #: CPU seconds of each thread alive at the end of the round.
    threads: dict[int, float]

    @property
    def micros_per_contact(self) -> float:
        return self.cpu_seconds / self.contacts * 1e6


def run_round(
    emulator: EmulatorProcess, *, contacts: int, list_every: int, threads: int, prefix: str
) -> Round:
    """One export's traffic of ``contacts`` new contacts; the emulator's CPU it cost."""
    batches = [batch_body(start, prefix) for start in range(0, contacts, BATCH_SIZE)]
    tag_calls = [
        tags_body(start, min(start + TAG_CALL_SIZE, contacts), prefix)
        for start in range(0, contacts, TAG_CALL_SIZE)
    ]
    clients = [httpx.Client(base_url=emulator.base_url, headers=HEADERS) for _ in range(threads)]
    requests = [0] * threads
    failures: list[str] = []

    def call(thread: int, method: str, path: str, body: bytes | None, expected: int) -> None:
        answer = clients[thread].request(
            method, path, content=body, params=None if body else LISTING
        )
        requests[thread] += 1
        if answer.status_code != expected:
            failures.append(f"{method} {path}: {answer.status_code} {answer.text[:200]}")

    def post_batches(thread: int) -> None:
        for index in range(thread, len(batches), threads):
            call(thread, "POST", "/batches", batches[index], 201)
            if index % list_every == list_every - 1:
                call(thread, "GET", "/batches", None, 200)

    def post_tags(thread: int) -> None:
        for index in range(thread, len(tag_calls), threads):
            call(thread, "POST", "/contacts/tags", tag_calls[index], 202)

    faults_before, _ = emulator.memory()
    threads_before = emulator.thread_cpu_seconds()
    cpu_before = emulator.cpu_seconds()
    started = time.perf_counter()
    ends: list[float] = []
    idle = True
    for work in (post_batches, post_tags):
        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        idle = emulator.drain() and idle
        ends.append(emulator.cpu_seconds())
    wall = time.perf_counter() - started
    faults_after, rss = emulator.memory()
    threads_after = emulator.thread_cpu_seconds()
    for client in clients:
        client.close()
    if failures or not idle:
        raise SystemExit(f"the round failed: {failures[:5]}, idle at the end: {idle}")
    return Round(
        contacts=contacts,
        requests=sum(requests),
        wall_seconds=wall,
        cpu_seconds=ends[1] - cpu_before,
        batches_cpu_seconds=ends[0] - cpu_before,
        tags_cpu_seconds=ends[1] - ends[0],
        page_faults=faults_after - faults_before,
        rss_mb=rss,
        threads={t: round(c - threads_before.get(t, 0.0), 2) for t, c in threads_after.items()},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000, help="new contacts a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="client threads (connections)")
    parser.add_argument("--list-every", type=int, default=100, help="batches between listings")
    parser.add_argument("--batch-delay", default=None, help="the emulator's (default 0.2)")
    parser.add_argument("--request-log-limit", type=int, default=None, help="default: keep all")
    parser.add_argument("--show-threads", action="store_true", help="CPU of each thread")
    parser.add_argument("--py-spy", default=None, help="record raw py-spy stacks to this file")
    parser.add_argument("--perf", default=None, help="record perf samples to this file")
    parser.add_argument("--wrapper", default=None, help="a script run instead of -m omnisync")
    args = parser.parse_args()
    emulator = EmulatorProcess(
        batch_delay=args.batch_delay,
        log_limit=args.request_log_limit,
        py_spy=Path(args.py_spy) if args.py_spy else None,
        perf=Path(args.perf) if args.perf else None,
        wrapper=Path(args.wrapper) if args.wrapper else None,
    )
    print(f"emulator benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs):"
          f" {args.contacts:,} contacts a round, batches of {BATCH_SIZE}, tag calls of"
          f" {TAG_CALL_SIZE}, {args.threads} client threads, batch delay"
          f" {args.batch_delay or 'default'}, log limit {args.request_log_limit}")  # fmt: skip
    try:
        for number in range(args.rounds):
            measured = run_round(
                emulator,
                contacts=args.contacts,
                list_every=args.list_every,
                threads=args.threads,
                prefix=f"r{number}-",
            )
            print(f"round {number + 1}: emulator CPU {measured.cpu_seconds:.2f} s ="
                  f" {measured.micros_per_contact:.1f} µs/contact ({measured.requests:,} requests,"
                  f" {measured.wall_seconds:.1f} s wall; batches {measured.batches_cpu_seconds:.2f}"
                  f" s, tags {measured.tags_cpu_seconds:.2f} s; {measured.page_faults:,} page"
                  f" faults, RSS {measured.rss_mb:,.0f} MB)", flush=True)  # fmt: skip
            if args.show_threads:
                print(f"  CPU seconds by thread: {measured.threads}")
    finally:
        if args.wrapper:
            emulator.process.send_signal(signal.SIGUSR1)  # a wrapper may report on it
            time.sleep(0.5)
        emulator.stop()


if __name__ == "__main__":
    main()
