"""How a run paces its delivery pipeline: the runner's knobs, and their defaults. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass

from omnisync.config.model import Connection


@dataclass(frozen=True)
class RunnerSettings:
    """Knobs of a run; the defaults suit Omnisend.

    ``poll_interval`` (clock seconds between batch-status rounds) and
    ``max_batches_in_flight`` default to values derived from the connection's
    ``requests_per_minute``: polling spends about a tenth of the request
    budget, and enough batches are in flight to keep creating at full rate.
    ``settle_timeout`` bounds the wait for a killed run's batches;
    ``stop_grace`` how long a stopped run follows batches already created.
    ``lock_dir`` holds the run locks (default: the config's state directory).
    """

    poll_interval: float | None = None
    max_batches_in_flight: int | None = None
    settle_timeout: float = 300.0
    stop_grace: float = 120.0
    lock_dir: str | None = None


@dataclass(frozen=True)
class PipelineSettings:
    """How a run on one connection paces its delivery pipelines (see :class:`RunnerSettings`)."""

    poll_interval: float
    max_batches_in_flight: int
    stop_grace: float


def pipeline_pacing(settings: RunnerSettings, connection: Connection) -> PipelineSettings:
    """The pacing of a run on ``connection``: ``settings``, with the defaults derived."""
    per_second = connection.rate_limit.requests_per_minute / 60.0
    # Polling spends about a tenth of the request budget...
    poll = settings.poll_interval
    if poll is None:
        poll = min(2.0, max(0.25, 10.0 / per_second))
    # ... and enough batches are in flight to create at full rate meanwhile.
    in_flight = settings.max_batches_in_flight
    if in_flight is None:
        in_flight = min(500, max(20, math.ceil(per_second * (poll + 2.0))))
    return PipelineSettings(poll, in_flight, settings.stop_grace)
