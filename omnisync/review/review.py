"""The review of a config change: every object compared, with effects and approvers. Pure.

:func:`review_configs` compares every object kind of two validated configs.
An export is also reported as changed when an object it depends on changed
in a way that matters in Omnisend (its segment's query, its connection's
brand, its named schedule), even if its own fields are the same.

Who must approve: the owner of each changed export (both, when the owner
changes); the admins for users, connections and the daemon; for sources,
segments and schedules the owners of the exports that use them (the admins
when none does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from omnisync.config.model import Config, Export, Position
from omnisync.review.compare import (
    Relocate,
    daemon_fields,
    field_changes,
    flatten,
    objects,
    same,
)
from omnisync.review.effects import Sides, connection_effects, export_effects, user_effects
from omnisync.review.model import (
    KINDS,
    SECTIONS,
    Change,
    ChangeType,
    Effect,
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
    """Every change from ``base`` to ``head``.

    ``members`` are the exports' member counts from their ledgers, if known;
    ``relocate_base`` maps paths of a base read from a temporary
    checkout back to the working tree (see :mod:`omnisync.review.compare`);
    ``relocate_head`` likewise for a head read from a revision.
    """
    sides = Sides(
        base=base,
        head=head,
        members=members,
        relocate_base=relocate_base,
        relocate_head=relocate_head,
    )
    changes: list[Change] = []
    for kind, _ in KINDS:
        before_objects = objects(base, kind)
        after_objects = objects(head, kind)
        for name in sorted(set(before_objects) | set(after_objects)):
            change = _compare(kind, name, sides)
            if change is not None:
                changes.append(change)
    return Review(
        base=base.revision,
        head=head.revision,
        changes=tuple(changes),
        counts_known=members.known,
        counts_note=members.note,
    )


def _compare(kind: Kind, name: str, sides: Sides) -> Change | None:
    relocate, relocate_head = sides.relocate_base, sides.relocate_head
    before = objects(sides.base, kind).get(name)
    after = objects(sides.head, kind).get(name)
    if kind == "daemon":
        old_fields = daemon_fields(sides.base, relocate=relocate)
        new_fields = daemon_fields(sides.head, relocate=relocate_head)
    else:
        old_fields = flatten(before, relocate=relocate) if before is not None else {}
        new_fields = flatten(after, relocate=relocate_head) if after is not None else {}
    fields = field_changes(old_fields, new_fields)
    effects = _EFFECTS.get(kind, _no_effects)(name, sides)
    change: ChangeType
    if before is None:
        change = "added"
    elif after is None:
        change = "removed"
    elif fields or effects:
        change = "changed"
    else:
        return None
    dotted = f"{SECTIONS[kind]}.{name}" if name else SECTIONS[kind]
    # The head's place, the base's for a removed object (or one the head does not place).
    where = sides.head if after is not None else sides.base
    moved = relocate_head if after is not None else relocate
    position = _position(where, dotted, moved) or _position(sides.base, dotted, relocate)
    field_positions = {}
    for field in fields:
        # A field the head still has is placed there; a removed one (or any of a
        # removed object) where the base had it.
        config = sides.head if field.after is not None else sides.base
        field_moved = relocate if config is sides.base else relocate_head
        found = _position(config, f"{dotted}.{field.path}", field_moved)
        if found is not None:
            field_positions[field.path] = found
    effects = tuple(
        dataclasses.replace(
            effect, position=_effect_position(effect, field_positions, where, dotted, moved)
        )
        for effect in effects
    )
    return Change(
        kind=kind,
        name=name,
        change=change,
        fields=fields,
        effects=effects,
        approvers=_approvers(kind, name, sides),
        position=position,
        field_positions=field_positions,
    )


def _effect_position(
    effect: Effect,
    field_positions: dict[str, Position],
    config: Config,
    dotted: str,
    relocate: Relocate,
) -> Position | None:
    """The line of the first changed field under the effect's path, else the path's own."""
    if effect.path is None:
        return _position(config, dotted, relocate)
    for path, position in field_positions.items():
        if path == effect.path or path.startswith(effect.path + "."):
            return position
    return _position(config, f"{dotted}.{effect.path}", relocate)


def _position(config: Config, dotted: str, relocate: Relocate = same) -> Position | None:
    found = config.position(dotted)
    if found is None:
        return None
    return dataclasses.replace(found, file=relocate(found.file))


def _no_effects(name: str, sides: Sides) -> tuple[Effect, ...]:
    return ()


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
    admins = _names(u.name for u in sides.head.users.values() if u.role == "admin")
    return admins or _names(u.name for u in sides.base.users.values() if u.role == "admin")


def _uses(config: Config, export: Export, kind: Kind, name: str) -> bool:
    segment = export.segment
    if kind == "segment":
        return segment == name
    if kind == "schedule":
        return export.schedule is not None and export.schedule.name == name
    found = config.segments.get(segment)
    return found is not None and found.source == name


def _names(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(names)))
