"""The daemon's Prometheus metrics, in a private registry.

A private :class:`~prometheus_client.CollectorRegistry` (never the global
one) so that two daemons in one test process, or a library user, never
collide. :class:`DaemonMetrics` is fed by the run coordinator (runs, counts,
durations), by reloads, and by the Omnisend clients through
:meth:`DaemonMetrics.client_observer` (429s met, time spent waiting for the
rate limiter).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Run durations span a few seconds (nothing changed) to over an hour (a first million).
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf"))

#: Counts a run reports, and which metric each one feeds.
_SENT_COUNTS = ("upserted",)
_INVALID_COUNTS = ("invalid",)


class DaemonMetrics:
    """Every metric the daemon exposes on ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.runs = Counter(
            "omnisync_runs_total",
            "Export runs finished, by export and outcome (succeeded, partial, failed).",
            ["export", "outcome"],
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
            "Unix time at which the last successful run of each export ended.",
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
        sent = sum(int(counts.get(name, 0)) for name in _SENT_COUNTS)
        invalid = sum(int(counts.get(name, 0)) for name in _INVALID_COUNTS)
        # Touch the labels even at zero so that a dashboard sees the export exists.
        self.contacts_sent.labels(export=export).inc(max(0, sent))
        self.invalid_rows.labels(export=export).inc(max(0, invalid))
        if outcome == "succeeded":
            self.last_success.labels(export=export).set(ended_at.timestamp())

    def export_removed(self, export: str) -> None:
        """Forget the ``running`` gauge of an export that left the config."""
        with contextlib.suppress(KeyError):
            self.running.remove(export)

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
