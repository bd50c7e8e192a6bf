"""The run summary as an operator reads it."""

from __future__ import annotations

from omnisync.engine.results import FailureSample, RunCounts, RunResult
from omnisync.engine.run_render import render_text


def test_a_sample_that_is_no_refusal_is_not_called_one() -> None:
    # A batch still queued at the deadline, an answer without a batch id, a tags call
    # that timed out: nothing was refused, and the counts line says "0 refused".
    samples = (
        FailureSample("batch 00000001b", "still not done 301 s after its creation"),
        FailureSample("tag 'vip' for 250 contact(s)", "timed out"),
    )
    result = RunResult("vip", "partial", RunCounts(), failure_samples=samples)
    text = render_text(result)
    assert "refused:" not in text
    assert "  failed: batch 00000001b: still not done 301 s after its creation\n" in text
    assert "  failed: tag 'vip' for 250 contact(s): timed out\n" in text
