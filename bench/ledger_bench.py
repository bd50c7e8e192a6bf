"""Benchmark: the state store's writes per contact in a first run, by kind.

Not a test (never run by the suite): it prints figures. A run records each
batch of 100 contacts as an intent, moves it in flight once Omnisend names
the batch, moves it into the ledger when the batch is acknowledged whole,
and records the tag per call of 250 e-mails. This does the same against a
fresh SQLite state store and prints the CPU of each kind of write per
contact (``time.thread_time``: steadier than wall time on a shared machine).

    .venv/bin/python bench/ledger_bench.py [--batches 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime

from omnisync.inflight import InflightItem
from omnisync.state import open_state_store

BATCH_ITEMS = 100
TAG_CALL_EMAILS = 250


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=10_000, help="batches of 100 contacts")
    args = parser.parse_args()
    now = datetime.now(UTC)
    spent = dict.fromkeys(("intent", "created", "acknowledged", "tagged"), 0.0)

    def timed(kind: str, write: Callable[..., object], *arguments: object) -> None:
        started = time.thread_time()
        write("bench", *arguments, now=now)
        spent[kind] += time.thread_time() - started

    with tempfile.TemporaryDirectory() as directory, open_state_store(directory) as store:
        waiting_for_tag: list[str] = []
        for batch in range(args.batches):
            numbers = range(batch * BATCH_ITEMS, (batch + 1) * BATCH_ITEMS)
            emails = [f"customer{number}@bench.example.com" for number in numbers]
            items = [
                InflightItem(email, number * 2654435761 % 2**62, True)
                for email, number in zip(emails, numbers, strict=True)
            ]
            token, batch_id = f"token-{batch}", f"batch-{batch}"
            timed("intent", store.record_intent, token, items)
            timed("created", store.record_created, token, batch_id)
            timed("acknowledged", store.acknowledge_batches, [(batch_id, None)])
            waiting_for_tag.extend(emails)
            while len(waiting_for_tag) >= TAG_CALL_EMAILS:
                call = waiting_for_tag[:TAG_CALL_EMAILS]
                del waiting_for_tag[:TAG_CALL_EMAILS]
                timed("tagged", store.mark_tagged, "bench", call)
    contacts = args.batches * BATCH_ITEMS
    print(f"{contacts:,} contacts, CPU per contact (µs):")
    for kind, seconds in spent.items():
        print(f"  {kind:<13} {seconds / contacts * 1e6:6.2f}")
    print(f"  {'all':<13} {sum(spent.values()) / contacts * 1e6:6.2f}")


if __name__ == "__main__":
    main()
