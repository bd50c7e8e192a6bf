"""The review of a config change: every object compared, with effects and approvers. Pure.

:func:`review_configs` compares every object kind of two validated configs.
An export is also reported as changed when an object it depends on changed
in a way that matters in Omnisend (its segment's query, its connection's
brand, its named schedule), even if its own fields are the same.

Who must approve: the owner of each changed export (both, when the owner
changes); the admins for users, connections and the daemon; for sources,
segments and schedules the owners of the exports that use them (the admins
when none does). The admins are the base's: a change cannot name its own
approvers (a contributor who makes himself an admin is approved by the admins
before it); the head's only when the base has none, a first config.

A base revision that holds no config is :func:`no_config`: every object of the
head is added, its daemon section too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from omnisync.config.model import Config, DaemonSettings, Export, Position
from omnisync.review.compare import Relocate, flatten, same
from omnisync.review.effects import Sides, connection_effects, export_effects, user_effects
from omnisync.review.model import (
    SECTIONS,
    Change,
    ChangeType,
    Effect,
    FieldChange,
    Kind,
    MemberCounts,
    Review,
)


def review_configs(
    base: Config,
    head: Config,
    *,
    members: MemberCounts,
    relocate_base: Relocate = same,
    relocate_head: Relocate = same,
) -> Review:
    """Every change from ``base`` to ``head``, costed with the ledgers' ``members``;
    ``relocate_base``/``relocate_head`` map the paths of a side read from a temporary
    checkout back to the working tree (see :mod:`omnisync.review.compare`)."""
    sides = Sides(base, head, members, relocate_base, relocate_head)
    changes = []
    for kind in SECTIONS:
        before, after = _objects(base, kind), _objects(head, kind)
        for name in sorted(set(before) | set(after)):
            change = _compare(kind, name, before.get(name), after.get(name), sides)
            if change is not None:
                changes.append(change)
    return Review(base.revision, head.revision, tuple(changes), members)


def no_config(revision: str) -> Config:
    """The config of a revision that holds none: no objects, and a config of no files
    (``files`` empty) has no daemon section either."""
    return Config(
        version=1,
        users={},
        sources={},
        segments={},
        connections={},
        schedules={},
        exports={},
        daemon=DaemonSettings(state_dir=""),
        revision=revision,
    )


#: A base without the config names no approvers of its own: fine for a first config, but a
#: config moved to another path (a renamed directory) would approve itself unseen.
_NO_BASE_CONFIG = Effect(
    "no_base_config",
    "danger",
    "the base revision holds no config at this path, so every object is new and the head's"
    " own admins approve it: right for a first config; a config moved from another path"
    " loses its review (its admins, ledgers and state_dir are the old path's)",
)


def _objects(config: Config, kind: Kind) -> Mapping[str, Any]:
    daemon = {"": config.daemon} if config.files else {}
    return daemon if kind == "daemon" else getattr(config, SECTIONS[kind])


def _compare(kind: Kind, name: str, before: object, after: object, sides: Sides) -> Change | None:
    old = {} if before is None else flatten(before, relocate=sides.relocate_base)
    new = {} if after is None else flatten(after, relocate=sides.relocate_head)
    fields = tuple(
        FieldChange(path, old.get(path), new.get(path))
        for path in sorted(set(old) | set(new))
        if old.get(path) != new.get(path)
    )
    effects = _EFFECTS[kind](name, sides) if kind in _EFFECTS else ()
    if kind == "daemon" and not sides.base.files:
        effects = (_NO_BASE_CONFIG,)
    if before is not None and after is not None and not (fields or effects):
        return None
    change: ChangeType = "added" if before is None else "removed" if after is None else "changed"
    dotted = f"{SECTIONS[kind]}.{name}" if name else SECTIONS[kind]
    # The head's place; the base's for a removed object, field or one the head does not place.
    present = after is not None
    field_positions = {
        field.path: found
        for field in fields
        if (found := sides.locate(f"{dotted}.{field.path}", head=field.after is not None))
    }
    return Change(
        kind=kind,
        name=name,
        change=change,
        fields=fields,
        effects=tuple(
            dataclasses.replace(
                effect, position=_effect_position(effect, field_positions, sides, dotted, present)
            )
            for effect in effects
        ),
        approvers=_approvers(kind, name, sides),
        position=sides.locate(dotted, head=present) or sides.locate(dotted, head=False),
        field_positions=field_positions,
    )


def _effect_position(
    effect: Effect, field_positions: dict[str, Position], sides: Sides, dotted: str, head: bool
) -> Position | None:
    """The line of the first changed field under the effect's path, else the path's own."""
    if effect.path is None:
        return sides.locate(dotted, head=head)
    for path, position in field_positions.items():
        if path == effect.path or path.startswith(effect.path + "."):
            return position
    return sides.locate(f"{dotted}.{effect.path}", head=head)


_EFFECTS: dict[Kind, Callable[[str, Sides], tuple[Effect, ...]]] = {
    "export": export_effects,
    "user": user_effects,
    "connection": connection_effects,
}


def _approvers(kind: Kind, name: str, sides: Sides) -> tuple[str, ...]:
    configs = (sides.base, sides.head)
    if kind == "export":
        return _names(c.exports[name].owner for c in configs if name in c.exports)
    if kind in ("source", "segment", "schedule"):
        owners = _names(
            export.owner
            for config in configs
            for export in config.exports.values()
            if _uses(config, export, kind, name)
        )
        if owners:
            return owners
    # Authority is the base's: the head's admins approve only a first config (no files),
    # else a change could name its own approvers. A base without an admin names none.
    approving = sides.base if sides.base.files else sides.head
    return _names(u.name for u in approving.users.values() if u.role == "admin")


def _uses(config: Config, export: Export, kind: Kind, name: str) -> bool:
    if kind == "segment":
        return export.segment == name
    if kind == "schedule":
        return export.schedule is not None and export.schedule.name == name
    return config.segments[export.segment].source == name


def _names(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(names)))
