"""Benchmark: how close an upsert + tag run comes to Omnisend's rate limits, and how few 429s.

Prints figures, asserts nothing (never run by the test suite). Time is modelled:
the emulator and the client share one ScaledClock, so a run of many modelled
minutes takes seconds of real time; every figure comes from the emulator's
request log (modelled seconds, stamped where the emulator answered).

    .venv/bin/python bench/omnisend_pacing.py [--contacts 100000] [--scale 30]
        [--requests-per-minute 400] [--tags-per-minute 60] [--poll-interval 2]
        [--safety-margin 0.5] [--send-jitter 0] [--runs 1]
    .venv/bin/python bench/omnisend_pacing.py --preset all    # both scenarios below

Presets: ``real`` is Omnisend's published 400/min and 60/min with 100,000
contacts (only the tags limit binds); ``scaled`` divides both limits and the
poll interval by 5 (80/min, 12/min, polls every 10 s) with 20,000 contacts, so
that the general limit binds too and the run spans several windows of both.

Figures:

- *share of the permitted rate* of a limit of L requests per 60 s: while the
  limit is busy (work is queued for it), the mean over every position of a
  60-second window inside the busy period of (admitted requests in the
  window) / L, all positions weighted equally. The tags limit is busy from
  its first call to its last; the general limit from the first request to
  the last batch creation (every upsert is queued up front). With fewer than
  two windows of busy time the per-position mean mostly measures the run's
  edges, so the per-call form is printed too: 60 / mean(t[k] - t[k - L]) over
  the calls that had to wait for the limit (k >= L).
- *429 share*: 429 answers / all requests the emulator answered.
- *modelled duration vs floor*: the floor is the slower of the two limits at
  its sustained rate (batch calls / 400 per minute, tags calls / 60 per
  minute), as in docs/design.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from omnisync.clock import ScaledClock
from omnisync.contact import ContactWrite
from omnisync.emulator import Emulator, RequestRecord
from omnisync.omnisend.batches import ItemFailure
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.errors import OmnisendError
from omnisync.omnisend.pacing import DEFAULT_SAFETY_MARGIN, BrandLimiter
from omnisync.omnisend.pipeline import DeliveryPipeline

WINDOW = 60.0
KEY = "bench-key"
TAGS = "POST /contacts/tags"
BATCHES = "POST /batches"


@dataclass(frozen=True)
class Scenario:
    contacts: int
    requests_per_minute: int
    tags_per_minute: int
    poll_interval: float
    scale: float
    safety_margin: float = DEFAULT_SAFETY_MARGIN
    send_jitter: float = 0.0  # real seconds


class JitterTransport(httpx.BaseTransport):
    """httpx's own transport, each request held back a random 0..``jitter`` real seconds
    before it is sent: the delay between a slot and Omnisend's receipt that a loaded
    machine or a slow network adds, differently for each request."""

    def __init__(self, jitter: float) -> None:
        self._inner = httpx.HTTPTransport()
        self._jitter = jitter
        self._random = random.Random(7)
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            delay = self._random.uniform(0.0, self._jitter)
        time.sleep(delay)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


PRESETS = {
    "real": Scenario(100_000, 400, 60, 2.0, 30.0),
    "scaled": Scenario(20_000, 80, 12, 10.0, 10.0),
}


class CountingListener:
    """A thread-safe DeliveryListener that counts what Omnisend confirmed."""

    def __init__(self) -> None:
        self.acknowledged = 0
        self.tagged = 0
        self._lock = threading.Lock()

    def batch_sending(self, emails: tuple[str, ...]) -> str:
        return ""

    def batch_created(self, provisional_id: str, batch_id: str, emails: tuple[str, ...]) -> None:
        pass

    def batch_not_created(self, provisional_id: str, error: OmnisendError) -> None:
        pass

    def upserts_acknowledged(self, acknowledged: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        with self._lock:
            self.acknowledged += sum(len(emails) for _, emails in acknowledged)

    def upserts_failed(self, batch_id: str, failures: tuple[ItemFailure, ...]) -> None:
        pass

    def batch_abandoned(self, batch_id: str, emails: tuple[str, ...]) -> None:
        pass

    def tags_added(self, tag: str, emails: tuple[str, ...]) -> None:
        with self._lock:
            self.tagged += len(emails)

    def tags_removed(self, tag: str, emails: tuple[str, ...]) -> None:
        pass

    def tag_call_failed(self, tag: str, emails: tuple[str, ...], error: OmnisendError) -> None:
        pass

    def removals_not_sent(self, tag: str, emails: tuple[str, ...]) -> None:
        pass


def window_fill(times: list[float], limit: int, start: float, end: float) -> float:
    """Mean of (requests in [s, s + 60)) / ``limit`` over window starts s in
    [start, end - 60]; NaN when the busy period is shorter than a window."""
    last_start = end - WINDOW
    if last_start <= start:
        return math.nan
    covered = sum(max(0.0, min(t, last_start) - max(t - WINDOW, start)) for t in times)
    return covered / (last_start - start) / limit


def spacing_rate(times: list[float], limit: int) -> float:
    """60 / mean(t[k] - t[k - limit]) over the calls that waited for the limit; NaN if none."""
    gaps = [times[index] - times[index - limit] for index in range(limit, len(times))]
    return WINDOW / (sum(gaps) / len(gaps)) if gaps else math.nan


def run(scenario: Scenario) -> dict[str, float]:
    clock = ScaledClock(scenario.scale)
    general, tags = scenario.requests_per_minute, scenario.tags_per_minute
    with Emulator(
        api_keys=(KEY,),
        clock=clock,
        requests_per_minute=general,
        tags_per_minute=tags,
        log_emails=False,
    ) as emulator:
        limiter = BrandLimiter(general, tags, clock=clock, safety_margin=scenario.safety_margin)
        transport = JitterTransport(scenario.send_jitter) if scenario.send_jitter > 0 else None
        with OmnisendClient(
            emulator.base_url,
            KEY,
            limiter=limiter,
            clock=clock,
            transport=transport,
            random=random.Random(1),
        ) as client:
            listener = CountingListener()
            pipeline = DeliveryPipeline(
                client,
                "bench",
                listener=listener,
                stop=threading.Event(),
                clock=clock,
                poll_interval=scenario.poll_interval,
            )
            started = time.monotonic()
            for index in range(scenario.contacts):
                pipeline.upsert(
                    ContactWrite(
                        email=f"bench{index:07d}@example.com",
                        fields={"firstName": f"B{index}", "city": "Vilnius"},
                    ),
                    then_tag=True,
                )
            pipeline.finish()
            real = time.monotonic() - started
        log: list[RequestRecord] = emulator.request_log()
        counts = emulator.counts()

    admitted = [r for r in log if r.status not in (None, 429)]
    times = [r.at for r in admitted]
    tag_times = [r.at for r in admitted if r.endpoint == TAGS]
    batch_times = [r.at for r in admitted if r.endpoint == BATCHES]
    floor = max(len(batch_times) / general, len(tag_times) / tags) * WINDOW
    modelled = times[-1] - times[0]
    return {
        "contacts": scenario.contacts,
        "acknowledged": listener.acknowledged,
        "tagged": listener.tagged,
        "batch_calls": len(batch_times),
        "tag_calls": len(tag_times),
        "reads": sum(1 for r in admitted if r.endpoint.startswith("GET")),
        "modelled": modelled,
        "floor": floor,
        "tags_fill": window_fill(tag_times, tags, tag_times[0], tag_times[-1]),
        "tags_spacing": spacing_rate(tag_times, tags),
        "general_fill": window_fill(times, general, times[0], batch_times[-1]),
        "first_tag_after": tag_times[0] - times[0],
        "rate_limited": counts["rate_limited"],
        "total": counts["total"],
        "share_429": counts["rate_limited"] / counts["total"],
        "real": real,
    }


def report(name: str, scenario: Scenario, figures: dict[str, float]) -> None:
    f = figures
    print(
        f"== {name}: {scenario.requests_per_minute}/min overall, "
        f"{scenario.tags_per_minute}/min tags, {scenario.contacts:,} contacts, "
        f"polls every {scenario.poll_interval:g} s, scale x{scenario.scale:g}, "
        f"safety margin {scenario.safety_margin:g} s, "
        f"send jitter {scenario.send_jitter * 1000:g} ms real"
    )
    print(f"   acknowledged {f['acknowledged']:,.0f}, tagged {f['tagged']:,.0f}")
    print(
        f"   calls              {f['batch_calls']:.0f} batches, {f['tag_calls']:.0f} tags, "
        f"{f['reads']:.0f} reads/polls"
    )
    print(
        f"   tags share         {f['tags_fill']:.1%} of the permitted rate "
        f"(window mean; per-call spacing {f['tags_spacing']:.1%})"
    )
    print(f"   general share      {f['general_fill']:.1%} while batches were being created")
    print(
        f"   429s               {f['rate_limited']:.0f} of {f['total']:.0f} requests "
        f"({f['share_429']:.2%})"
    )
    print(
        f"   modelled duration  {f['modelled']:,.0f} s against a floor of {f['floor']:,.0f} s "
        f"({f['floor'] / f['modelled']:.1%}); first tags call after {f['first_tag_after']:.1f} s"
    )
    print(f"   real time          {f['real']:,.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=[*PRESETS, "all"])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--scale", type=float, default=30.0)
    parser.add_argument("--requests-per-minute", type=int, default=400)
    parser.add_argument("--tags-per-minute", type=int, default=60)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--safety-margin", type=float, default=DEFAULT_SAFETY_MARGIN)
    parser.add_argument(
        "--send-jitter",
        type=float,
        default=0.0,
        help="hold each request back a random 0..N real seconds before sending it",
    )
    parser.add_argument("--runs", type=int, default=1, help="repeat each scenario")
    args = parser.parse_args()
    if args.preset is None:
        scenarios = {
            "custom": Scenario(
                args.contacts,
                args.requests_per_minute,
                args.tags_per_minute,
                args.poll_interval,
                args.scale,
                args.safety_margin,
                args.send_jitter,
            )
        }
    elif args.preset == "all":
        scenarios = PRESETS
    else:
        scenarios = {args.preset: PRESETS[args.preset]}
    if args.preset is not None:
        scenarios = {
            name: dataclasses.replace(
                scenario, safety_margin=args.safety_margin, send_jitter=args.send_jitter
            )
            for name, scenario in scenarios.items()
        }
    for name, scenario in scenarios.items():
        for _ in range(args.runs):
            report(name, scenario, run(scenario))


if __name__ == "__main__":
    main()
