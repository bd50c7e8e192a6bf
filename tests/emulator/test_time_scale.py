"""Modelled time: a ScaledClock runs batch delays and rate-limit windows faster than real time."""

from __future__ import annotations

from datetime import datetime

import pytest

from omnisync.clock import FakeClock, ScaledClock
from omnisync.emulator import Emulator
from tests.emulator.conftest import api_client, contact_body


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def test_a_batch_takes_batch_delay_modelled_seconds() -> None:
    with Emulator(time_scale=60, batch_delay=120) as emulator, api_client(emulator) as client:
        body = {"endpoint": "contacts", "method": "POST", "items": [contact_body("t@example.com")]}
        batch_id = client.post("/batches", json=body).json()["batchID"]
        assert client.get(f"/batches/{batch_id}").json()["status"] == "pending"
        emulator.clock.sleep(120)  # two real seconds
        assert emulator.drain()
        done = client.get(f"/batches/{batch_id}").json()
    assert done["status"] == "finished"
    assert seconds_between(done["createdAt"], done["startedAt"]) >= 60
    assert seconds_between(done["createdAt"], done["endedAt"]) >= 120


def test_request_times_are_modelled_seconds() -> None:
    clock = FakeClock(start=1000.0)
    with Emulator(clock=clock) as emulator, api_client(emulator) as client:
        client.get("/batches", params={"endpoint": "contacts"})
        clock.advance(3600)
        client.get("/batches", params={"endpoint": "contacts"})
        assert [record.at for record in emulator.request_log()] == [1000.0, 4600.0]


def test_clock_and_time_scale_are_exclusive_and_hosts_are_loopback() -> None:
    with pytest.raises(ValueError, match="either clock or time_scale"):
        Emulator(clock=ScaledClock(2), time_scale=2)
    with pytest.raises(ValueError, match="non-loopback"):
        Emulator(host="0.0.0.0")
    with pytest.raises(ValueError, match="at least one"):
        Emulator(api_keys=())
    with pytest.raises(RuntimeError, match="not started"):
        _ = Emulator().base_url
