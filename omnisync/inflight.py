"""What a batch in flight carries: one item per contact. Pure.

A contact sent in a batch is remembered until Omnisend has answered for it:
its e-mail, the fingerprint of what was sent and whether the export's tag
follows. The state store keeps a batch's items together (one row per batch).
"""

from __future__ import annotations

from typing import NamedTuple


class InflightItem(NamedTuple):
    """One contact in a batch sent but not settled: what was sent and whether to tag it after."""

    email: str
    fingerprint: int
    then_tag: bool
