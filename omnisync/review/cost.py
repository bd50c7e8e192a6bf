"""What a change costs in Omnisend requests and minutes. Pure.

A contact upsert travels in a batch of at most :data:`MAX_BATCH_ITEMS`
contacts (one ``POST /batches``); a tag is added or removed for at most
:data:`MAX_TAG_EMAILS` e-mails per tags call. Per brand, Omnisend allows
``requests_per_minute`` requests in all (400 by default) and
``tags_per_minute`` tags calls (60), which also count towards the first
limit; the client keeps both busy at once (``omnisync.omnisend.pacing``), so
the time a change takes under the limits is the longer of the two, as
docs/design.md ("What sets the speed") computes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omnisync.config.model import RateLimit
from omnisync.omnisend.payloads import MAX_BATCH_ITEMS, MAX_TAG_EMAILS


@dataclass(frozen=True)
class Cost:
    """Requests a change implies: ``batch_calls`` (``POST /batches``) and ``tag_calls``."""

    batch_calls: int = 0
    tag_calls: int = 0

    @property
    def requests(self) -> int:
        return self.batch_calls + self.tag_calls

    def minutes(self, limit: RateLimit) -> float:
        """The least time these requests take under ``limit``, in minutes."""
        return max(
            self.requests / limit.requests_per_minute,
            self.tag_calls / limit.tags_per_minute,
        )


def upserts(members: int) -> Cost:
    """Every one of ``members`` contacts upserted once."""
    return Cost(batch_calls=math.ceil(members / MAX_BATCH_ITEMS))


def tag_changes(members: int, *, tags: int = 1) -> Cost:
    """``tags`` tag additions or removals (one tag each) for every one of ``members``."""
    return Cost(tag_calls=tags * math.ceil(members / MAX_TAG_EMAILS))
