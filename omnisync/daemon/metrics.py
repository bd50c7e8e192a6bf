"""The daemon's Prometheus metrics, in a private registry (two daemons in one process,
or a library user, never collide).

Made to be alerted on (``examples/prometheus/alerts.yml``): every configured export
has all its series from the moment it is configured (``last_success`` at 0 until a
success is known, seeded from history), so "never succeeded" needs no ``absent()``;
an export that leaves the config loses them. A counter whose label values are known
(``omnisync_config_reloads_total{result}``) has each at 0 from the start, so that
``increase()`` counts the first one. No ``_created`` series: they would double every
counter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from omnisync import __version__
from omnisync.clock import parse_time
from omnisync.config.model import Config

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Run durations span a few seconds (nothing changed) to over an hour (a first million).
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf"))

#: The outcomes every configured export has a ``omnisync_runs_total`` series for.
OUTCOMES = ("succeeded", "partial", "failed", "held")
#: The results ``omnisync_config_reloads_total`` has a series for, from the start.
RELOAD_RESULTS = ("success", "failure")


class DaemonMetrics:
    """Every metric the daemon exposes on ``/metrics``."""

    def __init__(self) -> None:
        # Process-wide in prometheus_client; this process serves only these metrics.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry = CollectorRegistry(auto_describe=True)
        gauge = partial(Gauge, registry=registry)
        counter = partial(Counter, registry=registry)
        export_gauge = partial(gauge, labelnames=["export"])
        export_counter = partial(counter, labelnames=["export"])
        self._lock = threading.Lock()
        self._exports: set[str] = set()
        #: Exports a reload removed (until one adds them back): their runs record nothing.
        self._removed: set[str] = set()
        self._revision: str | None = None
        self._brands_held: set[str] = set()
        self.build_info = gauge(
            "omnisync_build_info",
            "Always 1; the version label is omnisync's version.",
            ["version"],
        )
        self.build_info.labels(version=__version__).set(1)
        self.config_info = gauge(
            "omnisync_config_info",
            "Always 1; the revision label is the config revision the daemon runs.",
            ["revision"],
        )
        self.runs = counter(
            "omnisync_runs_total",
            "Export runs finished, by export and outcome (succeeded, partial, failed, held).",
            ["export", "outcome"],
        )
        self.held = export_gauge(
            "omnisync_export_held",
            "1 while the export's last run was held by a change guard (nothing sent), else 0.",
        )
        self.contacts_sent = export_counter(
            "omnisync_contacts_sent_total",
            "Contacts Omnisend acknowledged as created or updated, by export.",
        )
        self.invalid_rows = export_counter(
            "omnisync_invalid_rows_total",
            "Segment rows that could not be mapped to a contact, by export.",
        )
        self.contacts_failed = export_counter(
            "omnisync_contacts_failed_total",
            "Contacts (or tag changes) Omnisend refused in runs of the export.",
        )
        self.contacts_pending = export_counter(
            "omnisync_contacts_pending_total",
            "Contacts runs of the export ended with still pending (the next run retries them),"
            " summed over runs.",
        )
        self.rate_limited = counter(
            "omnisync_rate_limited_total",
            "429 responses met from Omnisend, by connection.",
            ["connection"],
        )
        self.rate_limit_wait = counter(
            "omnisync_rate_limit_wait_seconds_total",
            "Seconds spent waiting for a rate limiter or a retryAfter, by connection.",
            ["connection"],
        )
        self.requests = counter(
            "omnisync_omnisend_requests_total",
            "Requests sent to Omnisend, by connection, endpoint and status (error: no answer).",
            ["connection", "endpoint", "status"],
        )
        self.last_success = export_gauge(
            "omnisync_last_success_timestamp_seconds",
            "Unix time at which the last successful run of each export ended;"
            " 0 while none is known.",
        )
        self.run_duration = Histogram(
            "omnisync_run_duration_seconds",
            "Duration of export runs, by export.",
            ["export"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.running = export_gauge(
            "omnisync_export_running",
            "1 while a run of the export is in flight.",
        )
        self.scheduled = export_gauge(
            "omnisync_export_scheduled",
            "1 while the export is enabled and has a schedule, else 0 (disabled, or on demand).",
        )
        self.reload_success = gauge(
            "omnisync_config_reload_success",
            "1 when the last config (re)load succeeded, 0 while the daemon runs an older config.",
        )
        self.reload_timestamp = gauge(
            "omnisync_config_reload_timestamp_seconds",
            "Unix time of the last config (re)load attempt.",
        )
        self.reloads = counter(
            "omnisync_config_reloads_total",
            "Config reload attempts, by result (success, failure).",
            ["result"],
        )
        for result in RELOAD_RESULTS:
            # At 0 from the start: increase() counts the first failure only from a 0 sample.
            self.reloads.labels(result=result)

        self.lease_held = gauge(
            "omnisync_brand_lease_held",
            "1 while this replica holds the brand's lease (shared state store only).",
            ["brand"],
        )
        self.leases_held = gauge(
            "omnisync_brand_leases_held",
            "How many brand leases this replica holds (shared state store only).",
        )
        self.lease_changes = counter(
            "omnisync_lease_changes_total",
            "Brand leases acquired, released and lost by this replica.",
            ["brand", "change"],
        )
        #: Counters fed by a run's counts, each with the counts it sums.
        self._count_counters = (
            (self.contacts_sent, ("upserted",)),
            (self.invalid_rows, ("invalid",)),
            (self.contacts_failed, ("upsert_failed", "tag_failed")),
            (self.contacts_pending, ("pending",)),
        )
        #: Every metric labelled by export alone: seeded and forgotten together.
        self._export_metrics = (
            *(counter for counter, _ in self._count_counters),
            self.run_duration,
            self.running,
            self.held,
            self.last_success,
            self.scheduled,
        )

    def lease_changed(self, brand: str, change: str) -> None:
        """A brand lease was ``acquired``, ``released`` or ``lost``."""
        with self._lock:
            self.lease_changes.labels(brand=brand, change=change).inc()
            held = change == "acquired"
            self.lease_held.labels(brand=brand).set(1 if held else 0)
            if held:
                self._brands_held.add(brand)
            else:
                self._brands_held.discard(brand)
            self.leases_held.set(len(self._brands_held))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return bytes(generate_latest(self.registry))

    def run_started(self, export: str) -> None:
        self.running.labels(export=export).set(1)

    def run_finished(
        self,
        export: str,
        *,
        outcome: str,
        counts: Mapping[str, int],
        duration_seconds: float,
        ended_at: datetime,
    ) -> None:
        """A run of ``export`` ended; nothing is recorded for an export a reload removed
        (a run a reload stopped ends after its series are gone: labels would bring them back)."""
        with self._lock:
            if export in self._removed:
                return
            self.running.labels(export=export).set(0)
            self.runs.labels(export=export, outcome=outcome).inc()
            self.run_duration.labels(export=export).observe(duration_seconds)
            for counter, names in self._count_counters:
                total = sum(int(counts.get(name, 0)) for name in names)
                counter.labels(export=export).inc(max(0, total))
            if outcome == "succeeded":
                self.last_success.labels(export=export).set(ended_at.timestamp())
            if outcome in OUTCOMES:
                # A held run holds the export until a run goes ahead (or is released).
                self.held.labels(export=export).set(1 if outcome == "held" else 0)

    def config_applied(
        self, config: Config, *, last_run: Callable[[str], Mapping[str, Any] | None]
    ) -> None:
        """The daemon runs ``config``: each export and connection gets every series now,
        an export seen first its last success (from ``last_run``, its latest run in history;
        0 if none), every export whether it is scheduled; exports no longer configured lose
        theirs."""
        names = set(config.exports)
        with self._lock:
            for connection in config.connections:
                self.rate_limited.labels(connection=connection)
                self.rate_limit_wait.labels(connection=connection)
            if config.revision != self._revision:
                self.config_info.clear()
                self.config_info.labels(revision=config.revision).set(1)
                self._revision = config.revision
            for name in sorted(names - self._exports):
                for outcome in OUTCOMES:
                    self.runs.labels(export=name, outcome=outcome)
                for metric in self._export_metrics:
                    metric.labels(export=name)
                last = last_run(name) or {}
                ended = (
                    parse_time(last.get("ended_at")) if last.get("status") == "succeeded" else None
                )
                self.last_success.labels(export=name).set(ended.timestamp() if ended else 0)
            for name, export in config.exports.items():
                self.scheduled.labels(export=name).set(1 if export.scheduled else 0)
            for name in sorted(self._exports - names):
                # Every series of the export, whatever outcomes its runs had.
                for metric in (*self._export_metrics, self.runs):
                    metric.remove_by_labels({"export": name})
            self._removed = (self._removed | (self._exports - names)) - names
            self._exports = names

    def reloaded(self, *, ok: bool, at: datetime) -> None:
        self.reload_success.set(1 if ok else 0)
        self.reload_timestamp.set(at.timestamp())
        self.reloads.labels(result="success" if ok else "failure").inc()


class ConnectionObserver:
    """The Omnisend client's observer for one connection: its events as metrics."""

    def __init__(self, metrics: DaemonMetrics, connection: str) -> None:
        self._requests = metrics.requests
        self._connection = connection
        self._rate_limited = metrics.rate_limited.labels(connection=connection)
        self._waited = metrics.rate_limit_wait.labels(connection=connection)

    def request_finished(self, endpoint: str, status: int | None, seconds: float) -> None:
        self._requests.labels(
            connection=self._connection,
            endpoint=endpoint,
            status=str(status) if status is not None else "error",
        ).inc()

    def rate_limited(self, endpoint: str, retry_after: float) -> None:
        self._rate_limited.inc()

    def limiter_waited(self, kind: str, seconds: float) -> None:
        if seconds > 0:
            self._waited.inc(seconds)
