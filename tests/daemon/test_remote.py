"""The run summary ``export run`` reads back from the daemon is the run's own."""

from __future__ import annotations

import json
from dataclasses import replace

from omnisync.daemon.remote import as_run_result, result_from_document
from omnisync.engine.results import FailureSample, ReasonCount, RunCounts, RunResult
from omnisync.engine.run_render import render_json, render_text

RESULT = RunResult(
    export="vip",
    status="partial",
    counts=RunCounts(rows=6, members=3, invalid=2, duplicates=1, upserted=2, pending=1),
    run_id=7,
    trigger="daemon-trigger",
    config_revision="git:0123abc",
    started_at="2026-01-01T00:00:00Z",
    ended_at="2026-01-01T00:00:02Z",
    error="1 operation left for the next run",
    stopped=True,
    invalid_reasons=(ReasonCount("email: not an e-mail address", 2, ("n***@x", "row 4")),),
    warnings=(ReasonCount("first_name: control characters removed", 1),),
    duplicates_sample=("a***@example.com",),
    failure_samples=(FailureSample("b***@example.com", "phone: not a number"),),
)


def test_the_summary_document_reads_back_as_the_same_run():
    # The daemon sends `export run --format json`'s document; read back, it renders the same.
    document = json.loads(render_json(RESULT))
    assert result_from_document(document, "vip") == RESULT
    remote = {"status": "partial", "result": document}
    assert render_text(as_run_result(remote, "vip")) == render_text(RESULT)
    assert render_json(as_run_result(remote, "vip")) == render_json(RESULT)


def test_a_record_without_a_summary_reads_as_its_status_and_counts():
    record = {
        "status": "skipped",
        "counts": {"upserted": 3, "not_a_count": "x"},
        "error": "export vip is running elsewhere",
        "history_id": None,
        "stop_reason": None,
    }
    result = as_run_result(record, "vip")
    assert (result.status, result.counts.upserted, result.run_id) == ("failed", 3, None)
    assert result.error == "export vip is running elsewhere"


def test_a_held_run_reads_back_as_held():
    # `export run` through the daemon exits as a held run (EXIT_HELD), not as a failure.
    document = json.loads(render_json(replace(RESULT, status="held")))
    assert result_from_document(document, "vip").status == "held"
    remote = {"status": "held", "counts": {"members": 3}}
    assert as_run_result(remote, "vip").status == "held"
