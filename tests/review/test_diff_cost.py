"""`omnisync diff` costs a re-send and a re-tag within 1% of what the next run then sends.

A 10,000-member export is delivered to the emulator by the real engine; the
config is then changed, `omnisync diff --base-config` (its entry point in this
process, tests.review.reviewing) reads the member count from the state store, and
the run that follows is counted in the emulator's request log. Minutes are the
time those requests take at least under the connection's limits (docs/design.md,
"What sets the speed"): computed here from the requests the run really sent, by
the design's own arithmetic, never from a measured duration.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from omnisync.clock import Clock, ScaledClock
from omnisync.config.loader import load_config
from omnisync.emulator import Emulator
from omnisync.engine.clients import ClientPool
from omnisync.engine.runner import ExportRunner
from omnisync.state import open_state_store
from tests.engine.helpers import (
    API_KEY_VARIABLE,
    TAG_ADDS,
    TAG_REMOVALS,
    UPSERTS,
    last_sequence,
    log_since,
    people,
    write_config,
    write_segment,
)
from tests.review.reviewing import Diff, as_json

MEMBERS = 10_000

#: Modelled seconds per real second, as in the engine tests.
SCALE = 60.0


@pytest.fixture
def clock() -> Clock:
    return ScaledClock(SCALE)


@pytest.fixture
def emulator(clock: Clock, start_emulator) -> Emulator:
    return start_emulator(api_keys=("test-key",), clock=clock)


def _run(config_path: Path, state_dir: Path, clock: Clock, environ: dict[str, str]) -> None:
    config = load_config(config_path, environ=environ)
    pool = ClientPool(clock=clock, environ={API_KEY_VARIABLE: "test-key"})
    with open_state_store(state_dir) as store:
        result = ExportRunner(config, store=store, clients=pool, clock=clock).run(
            "members", trigger="cli"
        )
    assert result.status == "succeeded", result


def _sent(emulator: Emulator, since: int) -> tuple[int, int]:
    """Accepted batch calls and tags calls in the log after ``since``."""
    records = [r for r in log_since(emulator, since) if r.status is not None and r.status < 300]
    batches = sum(1 for r in records if r.endpoint == UPSERTS)
    tags = sum(1 for r in records if r.endpoint in (TAG_ADDS, TAG_REMOVALS))
    return batches, tags


def _effect(base: Path, head: Path, state_dir: Path, code: str) -> dict[str, object]:
    diff = Diff(("--config", str(head), "--base-config", str(base), "--state-dir", str(state_dir)))
    document = as_json(diff)
    assert document["summary"]["counts"] == "known"
    found = [e for c in document["changes"] for e in c["effects"] if e["code"] == code]
    assert len(found) == 1, document
    effect: dict[str, object] = found[0]
    return effect


def _within_one_percent(reported: float, actual: float) -> bool:
    return math.isclose(reported, actual, rel_tol=0.01)


@pytest.mark.timeout(600)
def test_resend_and_retag_cost_what_the_run_then_sends(tmp_path, emulator, clock, monkeypatch):
    monkeypatch.setenv(API_KEY_VARIABLE, "test-key")  # the key the diff's config names
    database = tmp_path / "crm.sqlite"
    write_segment(database, people(MEMBERS))
    state_dir = tmp_path / "state"
    environ = {API_KEY_VARIABLE: "test-key", "HOME": str(tmp_path)}
    head = write_config(
        tmp_path, base_url=emulator.base_url, database=database, state_dir=state_dir
    )
    _run(head, state_dir, clock, environ)  # the first export: every member delivered
    with open_state_store(state_dir) as store:
        assert store.count_entries("members", tagged=True) == MEMBERS

    figures = {}
    edits = {
        "resend_all_members": ("      city: city\n", ""),  # one mapped field less
        "retag_all_members": ("    tag: members\n", "    tag: customers\n"),
    }
    for code, (old, new) in edits.items():
        base = tmp_path / f"before-{code}.yaml"
        shutil.copy(head, base)
        text = head.read_text()
        assert old in text
        head.write_text(text.replace(old, new))

        effect = _effect(base, head, state_dir, code)
        since = last_sequence(emulator)
        _run(head, state_dir, clock, environ)
        batches, tags = _sent(emulator, since)

        requests = batches + tags
        minutes = max(requests / 400, tags / 60)  # the connection's rate_limit: 400 and 60
        assert effect["members"] == MEMBERS
        assert isinstance(effect["requests"], int) and isinstance(effect["minutes"], float)
        assert _within_one_percent(effect["requests"], requests), (effect, batches, tags)
        assert _within_one_percent(effect["minutes"], minutes), (effect, minutes)
        figures[code] = (effect["requests"], requests, effect["minutes"], minutes)
    # A re-send is batches only, a re-tag tags calls only (adding the new, removing the old).
    assert figures["resend_all_members"][1] == MEMBERS // 100
    assert figures["retag_all_members"][1] == 2 * MEMBERS // 250
    print(figures)
