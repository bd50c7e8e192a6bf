"""The result of reviewing a config change: plain, frozen data. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from omnisync.config.model import Position

Risk = Literal["info", "warning", "danger"]
ChangeType = Literal["added", "removed", "changed"]
CHANGE_TYPES: tuple[str, ...] = get_args(ChangeType)
Kind = Literal["user", "source", "segment", "connection", "schedule", "export", "daemon"]

#: Risks from lowest to highest.
RISKS: tuple[Risk, ...] = ("info", "warning", "danger")

#: Object kinds in the order they are reported, with the config section that holds them.
SECTIONS: dict[Kind, str] = {
    "user": "users",
    "source": "sources",
    "segment": "segments",
    "connection": "connections",
    "schedule": "schedules",
    "export": "exports",
    "daemon": "daemon",
}


@dataclass(frozen=True)
class FieldChange:
    """One field, dotted below its object (``mapping.first_name``); ``None`` is absent."""

    path: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class Effect:
    """A consequence in Omnisend, with a stable ``code`` and a ``risk``, and its cost when it
    can be known: the export's ``members``, the ``requests`` implied and the least
    ``minutes`` they take under the connection's rate limits."""

    code: str
    risk: Risk
    message: str
    members: int | None = None
    requests: int | None = None
    minutes: float | None = None
    #: Where the cause was written, below the object (``tag``); ``None``: the object itself.
    path: str | None = None
    #: The file and line of ``path`` (for annotations), filled in by the review.
    position: Position | None = field(default=None, compare=False)


def _highest(effects: Sequence[Effect]) -> Risk | None:
    return max((effect.risk for effect in effects), key=RISKS.index, default=None)


def cost(effects: Sequence[Effect]) -> tuple[int | None, float | None]:
    """The requests and minutes of the costed ``effects`` together; ``None`` when none is."""
    costed = [effect for effect in effects if effect.requests is not None]
    if not costed:
        return None, None
    minutes = round(sum(effect.minutes or 0.0 for effect in costed), 2)
    return sum(effect.requests or 0 for effect in costed), minutes


@dataclass(frozen=True)
class Change:
    """One object added, removed or changed; ``name`` is ``""`` for the daemon section."""

    kind: Kind
    name: str
    change: ChangeType
    fields: tuple[FieldChange, ...] = ()
    effects: tuple[Effect, ...] = ()
    approvers: tuple[str, ...] = ()
    #: Where the object is written (the head's; the base's for a removed one).
    position: Position | None = None
    #: Where each changed field is written, by ``FieldChange.path``.
    field_positions: dict[str, Position] = field(default_factory=dict, compare=False)

    @property
    def risk(self) -> Risk | None:
        """The highest risk among the effects, ``None`` when there are none."""
        return _highest(self.effects)

    @property
    def title(self) -> str:
        return f"{self.kind} '{self.name}'" if self.name else self.kind


@dataclass(frozen=True)
class MemberCounts:
    """Members by export from its ledger (tagged entries); ``known`` false when there was
    no usable store, and then every count is ``None``; ``note`` says which store, or why."""

    known: bool
    note: str
    counts: dict[str, int] = field(default_factory=dict)

    def __call__(self, export: str) -> int | None:
        return self.counts.get(export) if self.known else None


@dataclass(frozen=True)
class Review:
    """Every change between ``base`` and ``head`` (revision labels), and the member counts
    they were costed with."""

    base: str
    head: str
    changes: tuple[Change, ...]
    members: MemberCounts

    @property
    def effects(self) -> tuple[Effect, ...]:
        return tuple(effect for change in self.changes for effect in change.effects)

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(sorted({name for change in self.changes for name in change.approvers}))

    def at_or_above(self, risk: Risk) -> tuple[Effect, ...]:
        return tuple(e for e in self.effects if RISKS.index(e.risk) >= RISKS.index(risk))

    def summary(self) -> dict[str, object]:
        """Counts for people and tools: changes by type, effects by risk, the total cost."""
        by_type = {kind: sum(c.change == kind for c in self.changes) for kind in CHANGE_TYPES}
        by_risk = {risk: sum(e.risk == risk for e in self.effects) for risk in RISKS}
        requests, minutes = cost(self.effects)
        return {
            "changes": len(self.changes),
            **by_type,
            "effects": by_risk,
            "highest_risk": _highest(self.effects),
            "requests": requests,
            "minutes": minutes,
            "counts": "known" if self.members.known else "unknown",
            "counts_note": self.members.note,
            "approvers": list(self.approvers),
        }
