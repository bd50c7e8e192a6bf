"""The daemon's Prometheus metrics, in a private registry.

A private :class:`~prometheus_client.CollectorRegistry` (never the global
one) so that two daemons in one test process, or a library user, never
collide. :class:`DaemonMetrics` is fed by the run coordinator (runs, counts,
durations), by reloads, and by the Omnisend clients through
:meth:`DaemonMetrics.client_observer` (429s met, time spent waiting for the
rate limiter).

Made to be alerted on (``examples/prometheus/alerts.yml``):

- every configured export has all its series from the moment it is
  configured: ``omnisync_runs_total`` at 0 for each outcome and
  ``omnisync_last_success_timestamp_seconds`` at 0 until a success is known
  (seeded from the history's latest run at start), so "never succeeded" and
  "failing" need no ``absent()``; an export that leaves the config loses them;
- ``omnisync_build_info{version}`` and ``omnisync_config_info{revision}``
  (the revision running, which a failed reload does not change);
- no ``_created`` series: they would double every counter for nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

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

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Run durations span a few seconds (nothing changed) to over an hour (a first million).
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf"))

#: The outcomes every configured export has a ``omnisync_runs_total`` series for.
OUTCOMES = ("succeeded", "partial", "failed", "held")


class DaemonMetrics:
    """Every metric the daemon exposes on ``/metrics``."""

    def __init__(self) -> None:
        # Process-wide in prometheus_client; this process serves only these metrics.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._lock = threading.Lock()
        self._exports: set[str] = set()
        self._revision: str | None = None
        self._brands_held: set[str] = set()
        self.build_info = Gauge(
            "omnisync_build_info",
            "Always 1; the version label is omnisync's version.",
            ["version"],
            registry=registry,
        )
        self.build_info.labels(version=__version__).set(1)
        self.config_info = Gauge(
            "omnisync_config_info",
            "Always 1; the revision label is the config revision the daemon runs.",
            ["revision"],
            registry=registry,
        )
        self.runs = Counter(
            "omnisync_runs_total",
            "Export runs finished, by export and outcome (succeeded, partial, failed, held).",
            ["export", "outcome"],
            registry=registry,
        )
        self.held = Gauge(
            "omnisync_export_held",
            "1 while the export's last run was held by a change guard (nothing sent), else 0.",
            ["export"],
            registry=registry,
        )
        self.contacts_sent = Counter(
            "omnisync_contacts_sent_total",
            "Contacts Omnisend acknowledged as created or updated, by export.",
            ["export"],
            registry=registry,
        )
        self.invalid_rows = Counter(
            "omnisync_invalid_rows_total",
            "Segment rows that could not be mapped to a contact, by export.",
            ["export"],
            registry=registry,
        )
        self.contacts_failed = Counter(
            "omnisync_contacts_failed_total",
            "Contacts (or tag changes) Omnisend refused in runs of the export.",
            ["export"],
            registry=registry,
        )
        self.contacts_pending = Counter(
            "omnisync_contacts_pending_total",
            "Contacts runs of the export ended with still pending (the next run retries them),"
            " summed over runs.",
            ["export"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "omnisync_rate_limited_total",
            "429 responses met from Omnisend, by connection.",
            ["connection"],
            registry=registry,
        )
        self.rate_limit_wait = Counter(
            "omnisync_rate_limit_wait_seconds_total",
            "Seconds spent waiting for a rate limiter or a retryAfter, by connection.",
            ["connection"],
            registry=registry,
        )
        self.requests = Counter(
            "omnisync_omnisend_requests_total",
            "Requests sent to Omnisend, by connection, endpoint and status (error: no answer).",
            ["connection", "endpoint", "status"],
            registry=registry,
        )
        self.last_success = Gauge(
            "omnisync_last_success_timestamp_seconds",
            "Unix time at which the last successful run of each export ended;"
            " 0 while none is known.",
            ["export"],
            registry=registry,
        )
        self.run_duration = Histogram(
            "omnisync_run_duration_seconds",
            "Duration of export runs, by export.",
            ["export"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.running = Gauge(
            "omnisync_export_running",
            "1 while a run of the export is in flight.",
            ["export"],
            registry=registry,
        )
        self.reload_success = Gauge(
            "omnisync_config_reload_success",
            "1 when the last config (re)load succeeded, 0 while the daemon runs an older config.",
            registry=registry,
        )
        self.reload_timestamp = Gauge(
            "omnisync_config_reload_timestamp_seconds",
            "Unix time of the last config (re)load attempt.",
            registry=registry,
        )
        self.reloads = Counter(
            "omnisync_config_reloads_total",
            "Config reload attempts, by result (success, failure).",
            ["result"],
            registry=registry,
        )

        self.lease_held = Gauge(
            "omnisync_brand_lease_held",
            "1 while this replica holds the brand's lease (shared state store only).",
            ["brand"],
            registry=registry,
        )
        self.leases_held = Gauge(
            "omnisync_brand_leases_held",
            "How many brand leases this replica holds (shared state store only).",
            registry=registry,
        )
        self.lease_changes = Counter(
            "omnisync_lease_changes_total",
            "Brand leases acquired, released and lost by this replica.",
            ["brand", "change"],
            registry=registry,
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
        self.running.labels(export=export).set(0)
        self.runs.labels(export=export, outcome=outcome).inc()
        self.run_duration.labels(export=export).observe(duration_seconds)
        for counter, names in self._count_counters:
            counter.labels(export=export).inc(max(0, sum(int(counts.get(n, 0)) for n in names)))
        if outcome == "succeeded":
            self.last_success.labels(export=export).set(ended_at.timestamp())
        if outcome in OUTCOMES:
            # A held run holds the export until a run goes ahead (or is released).
            self.held.labels(export=export).set(1 if outcome == "held" else 0)

    def config_applied(
        self,
        revision: str,
        exports: Iterable[str],
        *,
        connections: Iterable[str] = (),
        last_success: Callable[[str], datetime | None] = lambda export: None,
    ) -> None:
        """The daemon runs ``revision`` with these exports: each gets every series now.

        ``last_success`` seeds the last-success gauge of an export seen for the
        first time (from the run history); ``None``: none known, 0. Exports no
        longer configured lose their series. Each connection gets its 429 and
        waiting counters (at 0 until a client meets either).
        """
        names = set(exports)
        with self._lock:
            for connection in connections:
                self.rate_limited.labels(connection=connection)
                self.rate_limit_wait.labels(connection=connection)
            if revision != self._revision:
                self.config_info.clear()
                self.config_info.labels(revision=revision).set(1)
                self._revision = revision
            for name in sorted(names - self._exports):
                for outcome in OUTCOMES:
                    self.runs.labels(export=name, outcome=outcome)
                for metric in self._export_metrics:
                    metric.labels(export=name)
                succeeded = last_success(name)
                self.last_success.labels(export=name).set(
                    succeeded.timestamp() if succeeded is not None else 0
                )
            for name in sorted(self._exports - names):
                self._forget(name)
            self._exports = names

    def _forget(self, export: str) -> None:
        for metric in self._export_metrics:
            with contextlib.suppress(KeyError):
                metric.remove(export)
        for outcome in {*OUTCOMES, "skipped", "interrupted"}:
            with contextlib.suppress(KeyError):
                self.runs.remove(export, outcome)

    def reloaded(self, *, ok: bool, at: datetime) -> None:
        self.reload_success.set(1 if ok else 0)
        self.reload_timestamp.set(at.timestamp())
        self.reloads.labels(result="success" if ok else "failure").inc()

    def client_observer(self, connection: str) -> ConnectionObserver:
        """An observer for the Omnisend client of ``connection``."""
        return ConnectionObserver(self, connection)


class ConnectionObserver:
    """Turns one connection's client events into metrics.

    Implements the client's observer protocol (request finished, 429 met,
    limiter wait); every method is cheap and thread-safe.
    """

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
