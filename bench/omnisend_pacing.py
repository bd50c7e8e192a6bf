"""Benchmark: an upsert + tag run through DeliveryPipeline against the local emulator.

Prints figures, asserts nothing (never run by the test suite). Time is modelled:
the emulator and the client share one ScaledClock, so a run of many modelled
minutes takes seconds; every figure comes from the emulator's request log.

    .venv/bin/python bench/omnisend_pacing.py [--contacts 100000] [--scale 30]
        [--requests-per-minute 400] [--tags-per-minute 60] [--poll-interval 2]

Figures: modelled duration against the floor the two limits allow (DESIGN.md:
batch calls at 400/min overlapped with tags calls at 60/min, the slower of the
two sets the floor), the fill of each limit's windows while it was busy (see
tests/omnisend/test_throughput.py for the definition), 429s, real seconds.
"""

from __future__ import annotations

import argparse
import math
import random
import threading
import time

from omnisync.clock import ScaledClock
from omnisync.emulator import Emulator
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.model import ContactWrite, ItemFailure
from omnisync.omnisend.pacing import BrandLimiter
from omnisync.omnisend.pipeline import DeliveryPipeline

WINDOW = 60.0
KEY = "bench-key"


class CountingListener:
    def __init__(self) -> None:
        self.acknowledged = 0
        self.tagged = 0

    def batch_created(self, batch_id: str, emails: tuple[str, ...]) -> None:
        pass

    def upserts_acknowledged(self, batch_id: str, emails: tuple[str, ...]) -> None:
        self.acknowledged += len(emails)

    def upserts_failed(self, batch_id: str, failures: tuple[ItemFailure, ...]) -> None:
        pass

    def batch_abandoned(self, batch_id: str, emails: tuple[str, ...]) -> None:
        pass

    def tags_added(self, tag: str, emails: tuple[str, ...]) -> None:
        self.tagged += len(emails)

    def tags_removed(self, tag: str, emails: tuple[str, ...]) -> None:
        pass

    def tag_call_failed(self, tag: str, emails: tuple[str, ...], error: Exception) -> None:
        pass


def window_fill(times: list[float], limit: int, start: float, end: float) -> float:
    last_start = end - WINDOW
    if last_start <= start:
        return math.nan
    covered = sum(max(0.0, min(t, last_start) - max(t - WINDOW, start)) for t in times)
    return covered / (last_start - start) / limit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--scale", type=float, default=30.0)
    parser.add_argument("--requests-per-minute", type=int, default=400)
    parser.add_argument("--tags-per-minute", type=int, default=60)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    args = parser.parse_args()

    clock = ScaledClock(args.scale)
    general, tags = args.requests_per_minute, args.tags_per_minute
    with Emulator(
        api_keys=(KEY,),
        clock=clock,
        requests_per_minute=general,
        tags_per_minute=tags,
        log_emails=False,
    ) as emulator:
        limiter = BrandLimiter(general, tags, clock=clock)
        with OmnisendClient(
            emulator.base_url, KEY, limiter=limiter, clock=clock, random=random.Random(1)
        ) as client:
            listener = CountingListener()
            pipeline = DeliveryPipeline(
                client,
                "bench",
                listener=listener,
                stop=threading.Event(),
                clock=clock,
                poll_interval=args.poll_interval,
            )
            started = time.monotonic()
            for index in range(args.contacts):
                pipeline.upsert(
                    ContactWrite(
                        email=f"bench{index:07d}@example.com",
                        fields={"firstName": f"B{index}", "city": "Vilnius"},
                    ),
                    then_tag=True,
                )
            summary = pipeline.finish()
            real = time.monotonic() - started
        log = [r for r in emulator.request_log() if r.status not in (None, 429)]
        counts = emulator.counts()

    times = [r.at for r in log]
    tag_times = [r.at for r in log if r.endpoint == "POST /contacts/tags"]
    batch_times = [r.at for r in log if r.endpoint == "POST /batches"]
    batch_calls, tag_calls = len(batch_times), len(tag_times)
    floor = max(batch_calls / general, tag_calls / tags) * WINDOW
    modelled = times[-1] - times[0]
    print(
        f"contacts           {args.contacts:,} (acknowledged {listener.acknowledged:,}, "
        f"tagged {listener.tagged:,})"
    )
    print(f"limits             {general}/min overall, {tags}/min tags, scale x{args.scale:g}")
    print(
        f"calls              {batch_calls} batches, {tag_calls} tags, "
        f"{sum(1 for r in log if r.endpoint.startswith('GET'))} reads/polls"
    )
    print(
        f"modelled duration  {modelled:,.0f} s (floor at sustained rates {floor:,.0f} s, "
        f"{floor / modelled:.1%} of it)"
    )
    print(
        f"upserts done after {batch_times[-1] - times[0]:,.0f} s; first tags call after "
        f"{tag_times[0] - times[0]:,.1f} s"
    )
    print(
        f"general fill       {window_fill(times, general, times[0], batch_times[-1]):.1%} "
        "(while batches were being created)"
    )
    print(f"tags fill          {window_fill(tag_times, tags, tag_times[0], tag_times[-1]):.1%}")
    print(
        f"429s               {counts['rate_limited']} of {counts['total']} "
        f"({counts['rate_limited'] / counts['total']:.2%})"
    )
    print(f"real time          {real:,.1f} s; summary {summary}")


if __name__ == "__main__":
    main()
