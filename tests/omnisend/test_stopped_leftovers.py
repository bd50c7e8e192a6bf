"""A batch Omnisend stops: the pipeline sends its unprocessed leftovers again on their own,
announced to the listener before the request leaves, and reports every contact once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from omnisync.omnisend.pipeline import DeliveryPipeline
from tests.omnisend.conftest import Connection, RecordingListener, people


@dataclass
class ResendingListener(RecordingListener):
    """Also records which stopped batch each resent batch's contacts came from."""

    resent_from: dict[str, str] = field(default_factory=dict)  # provisional id -> stopped id

    def batch_resending(self, stopped_id: str, emails: tuple[str, ...]) -> str:
        # The stopped batch's refusals were reported before, and these were neither
        # acknowledged nor refused: its leftovers.
        assert "upserts_failed" in self.events
        assert set(emails) <= set(self.created[stopped_id])
        assert not set(emails) & {*self.acknowledged, *(f.email for f in self.failures)}
        provisional_id = self.batch_sending(emails)
        self.resent_from[provisional_id] = stopped_id
        return provisional_id


def test_a_stopped_batchs_leftovers_are_sent_again_alone_and_reported_once(
    connect: Callable[..., Connection],
) -> None:
    connection = connect()
    writes = people(30)
    refused = frozenset(write.email for write in writes[:16])  # more than half: it stops
    connection.emulator.set_faults(failing_emails=refused)
    listener = ResendingListener()
    pipeline = DeliveryPipeline(
        connection.client,
        tag="vip",
        listener=listener,
        stop=threading.Event(),
        clock=connection.clock,
        poll_interval=1.0,
    )
    for write in writes:
        pipeline.upsert(write, then_tag=True)
    pipeline.finish()

    first, second = listener.created.values()
    assert first == tuple(write.email for write in writes)
    assert second == tuple(write.email for write in writes[16:])  # in order, none refused
    assert list(listener.resent_from.values()) == [next(iter(listener.created))]
    assert {failure.email for failure in listener.failures} == refused
    assert set(listener.acknowledged) == set(second) == set(listener.added)
    assert listener.abandoned == []
    # Each contact ends acknowledged or refused once (the stopped batch's leftovers are
    # reported through the batch they were sent again in).
    reported = [*listener.acknowledged, *(failure.email for failure in listener.failures)]
    assert sorted(reported) == sorted(write.email for write in writes)
