"""``kill -9`` of a real ``omnisync export run`` after Omnisend applied a tags call and
before the ledger could record it; then a membership change and a run.

Omnisend processes every tags call and loses the answer (``drop_after_processing``), so
the killed run can never have recorded the call, whenever the kill lands: the child is
killed once the emulator logged the first one. The next run must put Omnisend right.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnisync.emulator import Emulator
from omnisync.emulator.faults import Faults
from tests.engine.helpers import (
    TAG_ADDS,
    TAG_REMOVALS,
    omnisync,
    omnisync_process,
    people,
    write_config,
    write_segment,
)

BRANDS = {"added-key": "added", "removed-key": "removed"}
MEMBERS = 20  # 3 leavers stay under the max_removed guard (20%)
LEAVERS = {f"person{number}@example.com" for number in range(3)}


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    # Real time: the export runs in another process on the system clock.
    with Emulator(api_keys=BRANDS, rate_limits=False, batch_delay=0.05) as running:
        yield running


@pytest.fixture(autouse=True)
def no_faults(emulator: Emulator) -> Iterator[None]:
    emulator.set_faults(Faults())
    yield
    emulator.set_faults(Faults())


def configured(directory: Path, emulator: Emulator) -> tuple[Path, Path]:
    """The config of export ``members`` over a segment of :data:`MEMBERS`, and its segment."""
    database = directory / "crm.sqlite"
    write_segment(database, people(MEMBERS))
    config = write_config(
        directory, base_url=emulator.base_url, database=database, state_dir=directory / "state"
    )
    return config, database


def run(config: Path, key: str) -> None:
    done = omnisync("export", "run", "members", "--config", str(config), api_key=key)
    assert done.returncode == 0, done.stdout + done.stderr


def killed_once_omnisend_applied_a(
    emulator: Emulator, config: Path, key: str, endpoint: str
) -> None:
    """Run the export with the answers of ``endpoint`` lost; SIGKILL it once one was applied."""
    emulator.set_faults(
        Faults(drop_rate=1.0, drop_after_processing=True, only_endpoints=frozenset({endpoint}))
    )
    brand = BRANDS[key]
    child = omnisync_process("export", "run", "members", "--config", str(config), api_key=key)
    deadline = time.monotonic() + 60
    try:
        while not any(r.endpoint == endpoint for r in emulator.request_log(brand=brand)):
            if child.poll() is not None:
                pytest.fail(f"the run ended before the kill point: {child.communicate()}")
            if time.monotonic() > deadline:
                pytest.fail("the kill point never came")
            time.sleep(0.005)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    emulator.set_faults(Faults())


def tagged(emulator: Emulator, brand: str) -> set[str]:
    assert emulator.drain()
    return {
        contact["email"]
        for contact in emulator.contacts(brand=brand)
        if "members" in (contact.get("tags") or ())
    }


def test_killed_after_a_tag_was_applied_then_the_contacts_leave(
    tmp_path: Path, emulator: Emulator
) -> None:
    config, database = configured(tmp_path, emulator)
    killed_once_omnisend_applied_a(emulator, config, "added-key", TAG_ADDS)
    everyone = {f"person{number}@example.com" for number in range(MEMBERS)}
    assert tagged(emulator, "added") == everyone  # applied, never recorded
    write_segment(database, people(MEMBERS - len(LEAVERS), start=len(LEAVERS)))
    run(config, "added-key")
    assert tagged(emulator, "added") == everyone - LEAVERS


def test_killed_after_a_tag_was_removed_then_the_contacts_return(
    tmp_path: Path, emulator: Emulator
) -> None:
    config, database = configured(tmp_path, emulator)
    run(config, "removed-key")
    everyone = tagged(emulator, "removed")
    assert len(everyone) == MEMBERS
    write_segment(database, people(MEMBERS - len(LEAVERS), start=len(LEAVERS)))
    killed_once_omnisend_applied_a(emulator, config, "removed-key", TAG_REMOVALS)
    assert tagged(emulator, "removed") == everyone - LEAVERS  # removed, never recorded
    write_segment(database, people(MEMBERS))
    run(config, "removed-key")
    assert tagged(emulator, "removed") == everyone
