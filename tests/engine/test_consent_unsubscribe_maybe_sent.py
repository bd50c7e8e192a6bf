"""A maybe-sent contact new to the export whose source now says unsubscribed: Omnisend holds
an older consent record of the same source (another export delivered it subscribed, both with
the default consent source). The unsubscribe still reaches Omnisend: only a write that would
add a consent record is kept from repeating one."""

from __future__ import annotations

from omnisync.state import InflightItem
from tests.engine.conftest import Setup
from tests.engine.helpers import people, person, write_segment
from tests.engine.test_settle import fingerprints, run, writes_for
from tests.omnisend.conftest import encoded


def test_the_unsubscribe_of_a_maybe_sent_new_contact_reaches_omnisend(setup: Setup) -> None:
    write_segment(setup.database, people(5))
    with setup.pool() as pool:  # another export of the brand: subscribed, with its record
        client = pool.client_for(setup.config().connections["shop"])
        client.create_batch(encoded(writes_for(setup, range(5))))
    assert setup.emulator.drain()
    # The CRM says person0 unsubscribed since; this export never delivered anyone.
    rows = [person(0, status="unsubscribed", status_at="2026-06-01T10:00:00Z"), *people(4, start=1)]
    write_segment(setup.database, rows)
    prints = fingerprints(setup)
    with setup.store() as store:  # killed after its intent, before its batch left
        items = [InflightItem(email, fingerprint, True) for email, fingerprint in prints.items()]
        store.record_intent("members", "token-a", items, now=setup.clock.wall())
    result = run(setup)
    assert result.status == "succeeded", result.error
    assert setup.emulator.drain()
    contact = setup.emulator.contact("person0@example.com")
    assert contact is not None and contact["status"] == "unsubscribed", contact
    for number in range(1, 5):  # and the others got no second consent record
        other = setup.emulator.contact(f"person{number}@example.com")
        assert other is not None and len(other["consents"]) == 1, other
