"""The lease board and fencing on a real PostgreSQL store (a fresh schema per test)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from omnisync.inflight import InflightItem
from omnisync.state.store import Fence, LeaseLost
from tests.state.backends import PostgresBackend

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def backend(tmp_path):
    return PostgresBackend(tmp_path)


@pytest.fixture
def board(backend):
    from omnisync.state.leases import LeaseBoard

    backend.open().close()  # migrate
    opened = LeaseBoard(backend.dsn)
    yield opened
    opened.close()


def test_a_free_brand_is_taken_once_and_every_taking_gets_a_larger_token(board):
    first = board.acquire("brand-a", "r0", lease_seconds=30)
    assert first is not None
    assert board.acquire("brand-a", "r1", lease_seconds=30) is None  # held, live
    assert board.release("brand-a", "r0", first)
    second = board.acquire("brand-a", "r1", lease_seconds=30)
    assert second is not None and second > first
    assert [(lease.brand, lease.holder, lease.live) for lease in board.board().leases] == [
        ("brand-a", "r1", True)
    ]
    [lease] = board.board().leases
    assert 25 < lease.seconds_left <= 30


def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_renew_it(board):
    token = board.acquire("brand-a", "r0", lease_seconds=0.3)
    assert token is not None
    time.sleep(0.5)
    # Expired but not taken: still r0's (nobody else wrote), renewable.
    assert board.renew("r0", {"brand-a": token}, lease_seconds=0.3) == {"brand-a": token}
    time.sleep(0.5)
    newer = board.acquire("brand-a", "r1", lease_seconds=30)
    assert newer is not None and newer > token
    assert board.renew("r0", {"brand-a": token}, lease_seconds=30) == {}
    assert board.release("brand-a", "r0", token) is False


def test_heartbeats_make_replicas_live_and_retiring_releases_their_leases(board):
    board.heartbeat("r0", lease_seconds=30, version="1", config_revision="abc", running=["vip"])
    board.heartbeat("r1", lease_seconds=0.2, version="1", config_revision="abc", running=[])
    board.acquire("brand-a", "r0", lease_seconds=30)
    time.sleep(0.4)
    snapshot = board.board()
    assert [(replica.id, replica.live, replica.running) for replica in snapshot.replicas] == [
        ("r0", True, ("vip",)),
        ("r1", False, ()),
    ]
    assert board.retire("r0") == 1
    assert board.board().leases == ()
    assert [replica.id for replica in board.board().replicas] == ["r1"]


def test_a_scheduled_fire_is_claimed_by_one_replica_only(board):
    assert board.claim_fire("vip", "2026-12-07T12:00:00.000Z", "r0") is True
    assert board.claim_fire("vip", "2026-12-07T12:00:00.000Z", "r1") is False
    assert board.claim_fire("vip", "2026-12-07T12:00:03.000Z", "r1") is True
    assert board.claim_fire("news", "2026-12-07T12:00:00.000Z", "r1") is True


def test_run_requests_go_to_the_holder_of_their_brand_once(board):
    asked = board.request_run("vip", "brand-a", trigger="cli request")
    other = board.request_run("news", "brand-b", trigger="cli request")
    assert board.claim_requests(["brand-b"], "r1")[0].id == other
    claimed = board.claim_requests(["brand-a"], "r0")
    assert [(request.id, request.export, request.claimed_by) for request in claimed] == [
        (asked, "vip", "r0")
    ]
    assert board.claim_requests(["brand-a"], "r2") == []
    assert board.withdraw_request(asked) is False  # claimed: too late to withdraw
    board.answer_request(asked, answer={"status": "succeeded"}, run_id=7)
    answered = board.request(asked)
    assert answered is not None
    assert (answered.run_id, dict(answered.answer or {})) == (7, {"status": "succeeded"})


def test_requests_claimed_over_a_week_ago_are_forgotten_when_a_new_one_comes(board):
    answered = board.request_run("vip", "brand-a", trigger="cli request")
    orphaned = board.request_run("vip", "brand-a", trigger="cli request")  # its replica died
    waiting = board.request_run("news", "brand-b", trigger="cli request")  # never claimed
    recent = board.request_run("vip", "brand-a", trigger="cli request")
    board.claim_requests(["brand-a"], "r0")
    board.answer_request(answered, answer={"status": "succeeded"}, run_id=7)
    with board.transaction("age them") as connection:
        connection.execute(
            "UPDATE run_requests SET requested_at = requested_at - interval '8 days', "
            "claimed_at = claimed_at - interval '8 days' WHERE id <> %s",
            (recent,),
        )
    board.request_run("vip", "brand-a", trigger="cli request")
    assert board.request(answered) is None and board.request(orphaned) is None
    assert board.request(waiting) is not None and board.request(recent) is not None


def test_fenced_writes_stop_the_moment_another_replica_takes_the_brand(backend, board):
    store = backend.open()
    try:
        token = board.acquire("brand-a", "r0", lease_seconds=0.3)
        assert token is not None
        fenced = store.fenced(Fence("brand-a", "r0", token))  # type: ignore[attr-defined]
        run = fenced.start_run("vip", trigger="schedule", config_revision="abc", now=NOW)
        assert run.replica == "r0"
        fenced.record_intent("vip", "t1", [InflightItem("a@example.com", 1, True)], now=NOW)
        time.sleep(0.5)
        assert board.acquire("brand-a", "r1", lease_seconds=30) is not None
        before = store.intents("vip")
        with pytest.raises(LeaseLost, match="no longer holds brand brand-a"):
            fenced.record_created("vip", "t1", "batch-1", now=NOW)
        with pytest.raises(LeaseLost):
            fenced.finish_run(run.id, status="succeeded", counts={}, error=None, now=NOW)
        # Nothing changed; reads still work; closing the fenced view leaves the store open.
        assert fenced.intents("vip") == before
        assert store.run(run.id).status == "running"  # type: ignore[union-attr]
        fenced.close()
        assert store.runs("vip")[0].replica == "r0"
    finally:
        store.close()


def test_an_unfenced_store_writes_whatever_the_leases_say(backend, board):
    store = backend.open()
    try:
        board.acquire("brand-a", "r1", lease_seconds=30)
        run = store.start_run("vip", trigger="cli", config_revision="abc", now=NOW)
        assert run.replica is None
    finally:
        store.close()
