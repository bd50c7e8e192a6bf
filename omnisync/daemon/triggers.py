"""A run's trigger as history records it: ``schedule``, ``retry``, ``catch-up``, ``reload``
from the daemon; a person's run is ``cli``, ``cli request`` (through a shared store) or
``daemon-trigger``, then what the person asked for: ``cli, full resync, release by olena``.
Pure."""

from __future__ import annotations

FULL = "full resync"
RELEASE = "release by"


def manual_trigger(base: str, *, full: bool = False, release_by: str | None = None) -> str:
    """The trigger recorded for a run a person asked for: ``base``, then what it asked."""
    parts = [base]
    if full:
        parts.append(FULL)
    if release_by is not None:
        who = "".join(character for character in release_by if character.isprintable())
        parts.append(f"{RELEASE} {who[:64] or 'unknown'}")
    return ", ".join(parts)


def is_release(trigger: str) -> bool:
    """Whether ``trigger`` releases the run past the change guards (once)."""
    return any(part.startswith(RELEASE) for part in trigger.split(", "))


def is_full(trigger: str) -> bool:
    """Whether ``trigger`` asks for a full resync (every member re-sent and re-tagged)."""
    return FULL in trigger.split(", ")
