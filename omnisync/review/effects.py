"""What a change does in Omnisend: effects with stable codes and risks. Pure.

Per export (comparing the export and everything it depends on: its segment
and that segment's source, its connection's brand, its schedule):

- ``first_export`` (warning): an export is added, or enabled again;
- ``export_renamed`` (danger): an added export delivers to the brand and segment or tag
  of a removed one: ledgers are kept by name, so every member is sent again, consent too;
- ``resend_all_members`` (warning): what is sent for each member changes (the mapping,
  a custom property, consent: the fingerprint spec);
- ``retag_all_members`` (warning): the export's tag changes;
- ``untag_on_leave_changed`` (warning): ``on_leave`` keep → untag (info the other way);
- ``welcome_messages_enabled`` (danger): ``send_welcome_message`` becomes true;
- ``consent_changed`` (warning): the consent columns or label change;
- ``moves_brand`` (danger): the export's connection reaches another brand;
- ``membership_may_change`` (warning): the segment's query (whitespace around it aside) or
  source changes (not its ``key``: members are matched by e-mail);
- ``state_store_moved`` (warning): the state store moves: every enabled export starts
  from an empty ledger there, every member upserted and tagged again;
- ``export_removed``, ``export_disabled`` (warning): an export is removed, or disabled;
- ``guards_loosened`` (warning): a change guard holds fewer runs (``allow_empty``, a
  higher ``max_removed``...): an empty segment may untag every member;
- ``schedule_changed`` (info): the schedule changes (how often it runs before/after).

Per user and connection: ``permission_granted`` (warning) and
``permission_revoked`` (info) when a user gains or loses a connection or a
role, and ``data_transfer_acceptance_changed`` (warning; danger when revoked
while exports use the connection).

A brand is what Omnisend's limits and contacts belong to: the connection's
base URL and API key reference (the key itself is never read here).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from omnisync.config.model import Config, Connection, Export, Position
from omnisync.fingerprint import spec_digest
from omnisync.omnisend.payloads import MAX_BATCH_ITEMS, MAX_TAG_EMAILS
from omnisync.review.compare import Relocate, flatten, loosened_guards
from omnisync.review.model import Effect, MemberCounts, Risk
from omnisync.review.rates import describe_runs, runs_per_day


@dataclass(frozen=True)
class Sides:
    """The two configs compared and the member counts at hand."""

    base: Config
    head: Config
    members: MemberCounts
    #: Paths of each side as the working tree holds them (see ``compare``).
    relocate_base: Relocate
    relocate_head: Relocate

    def side(self, *, head: bool) -> tuple[Config, Relocate]:
        """The head's (else the base's) config, and how to map its paths back."""
        return (self.head, self.relocate_head) if head else (self.base, self.relocate_base)

    def locate(self, dotted: str, *, head: bool) -> Position | None:
        """Where ``dotted`` is written in the head (else the base), as the working tree has it."""
        config, relocate = self.side(head=head)
        found = config.position(dotted)
        return None if found is None else dataclasses.replace(found, file=relocate(found.file))

    def brand_of(self, export: str, *, head: bool) -> str | None:
        """The brand ``export`` delivers to on one side, an API key file's path as the
        working tree has it (a checkout's own path would make every file key a new brand)."""
        config, relocate = self.side(head=head)
        definition = config.exports.get(export)
        connection = config.connections.get(definition.connection) if definition else None
        if connection is None:
            return None
        key = connection.api_key
        if key.kind == "file":
            key = dataclasses.replace(key, name=relocate(key.name))
        return dataclasses.replace(connection, api_key=key).brand


def store_move(
    base: Config, head: Config, *, relocate_base: Relocate, relocate_head: Relocate
) -> tuple[str, str] | None:
    """Where the base and the head keep their ledgers (a PostgreSQL DSN's reference, or a
    SQLite state directory as the working tree has it), when that differs; never for a
    base of no config (see ``review.no_config``)."""
    before, after = _ledgers(base, relocate_base), _ledgers(head, relocate_head)
    return (before, after) if base.files and before != after else None


def _ledgers(config: Config, relocate: Relocate) -> str:
    if config.daemon.state.shared:
        return f"PostgreSQL {flatten(config.daemon.state, relocate=relocate).get('dsn')}"
    return relocate(config.daemon.state_dir)


def export_effects(name: str, sides: Sides) -> tuple[Effect, ...]:
    """The effects of the change to export ``name`` (added, removed or changed)."""
    before = sides.base.exports.get(name)
    after = sides.head.exports.get(name)
    members = sides.members(name)
    held = f"its {members} contacts" if members is not None else "its contacts"
    moved = store_move(
        sides.base, sides.head, relocate_base=sides.relocate_base, relocate_head=sides.relocate_head
    )
    # A ledger in a store the head no longer uses is not resumed from.
    ledger = None if moved else members
    if before is None:
        return () if after is None else _added(name, after, sides, ledger, moved=bool(moved))
    if after is None:
        return (
            Effect(
                "export_removed",
                "warning",
                f"no more runs; nothing is deleted: {held} keep tag '{before.tag}' in Omnisend,"
                " and its ledger stays in the state store (an export of the same name resumes"
                " from it)",
                members=members,
            ),
        )
    found: list[Effect] = []
    connection = sides.head.connections[after.connection]
    if before.enabled and not after.enabled:
        found.append(
            Effect(
                "export_disabled",
                "warning",
                f"no more runs until enabled again: {held} keep tag '{before.tag}' and stop"
                " following the segment; the ledger stays",
                members=members,
                path="enabled",
            )
        )
    if not before.enabled and after.enabled:
        found.append(
            Effect("first_export", "warning", f"enabled again: {_resumed(ledger)}", path="enabled")
        )
    if moved and after.enabled:
        consent = "; contacts get a subscription status again" if after.consent else ""
        found.append(
            Effect(
                "state_store_moved",
                "warning",
                f"the state store moves from {moved[0]} to {moved[1]}: the export starts there"
                f" from an empty ledger, every member is upserted and tagged again{consent}",
                **_cost(members, connection, upserts=1, tag_changes=1),
            )
        )
    if sides.brand_of(name, head=False) != sides.brand_of(name, head=True):
        found.append(
            Effect(
                "moves_brand",
                "danger",
                f"moves from connection '{before.connection}' to '{after.connection}', another"
                " brand: the new brand gets a first export (every member upserted and tagged);"
                f" the old brand keeps its contacts and tag '{before.tag}', and the export's"
                " state is reset",
                members=members,
                path="connection",
            )
        )
    if spec_digest(before) != spec_digest(after):
        found.append(
            Effect(
                "resend_all_members",
                "warning",
                "what is sent for each member changes: every member is upserted again",
                path="mapping",
                **_cost(members, connection, upserts=1),
            )
        )
    if before.consent != after.consent:
        found.append(_consent(before, after))
    if before.tag != after.tag:
        found.append(
            Effect(
                "retag_all_members",
                "warning",
                f"the tag changes from '{before.tag}' to '{after.tag}': every member gets"
                f" '{after.tag}', then loses '{before.tag}'",
                path="tag",
                **_cost(members, connection, tag_changes=2),
            )
        )
    if before.on_leave != after.on_leave:
        found.append(_on_leave(after))
    if not before.send_welcome_message and after.send_welcome_message:
        found.append(_WELCOME)
    if _membership(*sides.side(head=False), before) != _membership(*sides.side(head=True), after):
        found.append(
            Effect(
                "membership_may_change",
                "warning",
                f"the segment ('{after.segment}': its query or source) changes: members"
                " may join (upserted and tagged) or leave; run `omnisync plan` to count them",
                path="segment",
            )
        )
    if loosened := loosened_guards(before.guards, after.guards):
        found.append(
            Effect(
                "guards_loosened",
                "warning",
                f"the change guards loosen ({loosened}): a run that looks like an accident"
                " (an empty segment, most members leaving or re-sent) may no longer be held",
                path="guards",
            )
        )
    if before.schedule != after.schedule:
        old, new = runs_per_day(before.schedule), runs_per_day(after.schedule)
        found.append(
            Effect(
                "schedule_changed",
                "info",
                f"runs {describe_runs(old)} → {describe_runs(new)}"
                f" ({_schedule_text(before)} → {_schedule_text(after)})",
                path="schedule",
            )
        )
    return tuple(found)


def _resumed(ledger: int | None) -> str:
    """What a first run sends, given the members its ledger kept (from before a removal)."""
    if ledger:
        return (
            f"it resumes from the {ledger} members of its ledger: everything that changed"
            " since is sent"
        )
    return "every member will be upserted and tagged"


def _added(
    name: str, export: Export, sides: Sides, ledger: int | None, *, moved: bool
) -> tuple[Effect, ...]:
    renamed = None if ledger or not export.enabled else _renamed_from(name, export, sides)
    if renamed is not None:
        consent = (
            ", with a subscription status again (a second consent record)" if export.consent else ""
        )
        keep = "" if moved else f": keep the name '{renamed}' to resume from its ledger"
        connection = sides.head.connections[export.connection]
        tagged = sides.base.exports[renamed].tag.casefold() == export.tag.casefold()
        same = f"tag '{export.tag}'" if tagged else f"segment '{export.segment}'"
        first = Effect(
            "export_renamed",
            "danger",
            f"renames export '{renamed}' (the same brand and {same}): ledgers are"
            " kept by export name, so this one starts from an empty ledger: every member is"
            f" upserted and tagged again{consent}; omnisync cannot carry a ledger over to a"
            f" new name{keep}",
            **_cost(sides.members(renamed), connection, upserts=1, tag_changes=1),
        )
    elif export.enabled:
        first = Effect(
            "first_export",
            "warning",
            f"a new export to '{export.connection}' (tag '{export.tag}'): {_resumed(ledger)};"
            " run `omnisync plan` to count the segment",
        )
    else:
        first = Effect(
            "first_export", "info", "a new export, disabled: nothing is sent until enabled"
        )
    return (first, _WELCOME) if export.send_welcome_message else (first,)


def _renamed_from(name: str, export: Export, sides: Sides) -> str | None:
    """The first removed export that delivered to ``export``'s brand with its segment or
    its tag (ignoring case, as tags are), whose members this one sends again (whatever its
    tag: the ledger is what is lost); ``None`` when there is none."""
    brand, tag = sides.brand_of(name, head=True), export.tag.casefold()
    removed = sorted(set(sides.base.exports) - set(sides.head.exports))
    base = sides.base.exports
    matches = (
        old
        for old in removed
        if base[old].segment == export.segment or base[old].tag.casefold() == tag
    )
    return next((old for old in matches if sides.brand_of(old, head=False) == brand), None)


def _consent(before: Export, after: Export) -> Effect:
    if before.consent is None:
        told = "contacts new to this export now get a subscription status from the source"
    elif after.consent is None:
        told = "contacts new to this export no longer get a subscription status"
    else:
        told = "contacts new to this export get their status from other columns or label"
    return Effect(
        "consent_changed",
        "warning",
        f"{told}; contacts already delivered never get a status again",
        path="consent",
    )


def _on_leave(after: Export) -> Effect:
    if after.on_leave == "untag":
        return Effect(
            "untag_on_leave_changed",
            "warning",
            f"on_leave keep → untag: contacts that left the segment, earlier ones included,"
            f" lose tag '{after.tag}' at the next run",
            path="on_leave",
        )
    kept = f"on_leave untag → keep: contacts that leave the segment keep tag '{after.tag}'"
    return Effect("untag_on_leave_changed", "info", kept, path="on_leave")


_WELCOME = Effect(
    "welcome_messages_enabled",
    "danger",
    "send_welcome_message: every contact this export creates gets the brand's welcome"
    " message from Omnisend",
    path="send_welcome_message",
)


def _schedule_text(export: Export) -> str:
    return export.schedule.describe() if export.schedule is not None else "no schedule"


def _membership(config: Config, relocate: Relocate, export: Export) -> object:
    """What decides the export's members: its segment's query (whitespace around it means
    nothing to a database) and source; not its ``key``, which no run reads."""
    segment = config.segments[export.segment]
    source = flatten(config.sources[segment.source], relocate=relocate)
    return (segment.query and segment.query.strip(), source)


def _cost(
    members: int | None, connection: Connection, *, upserts: int = 0, tag_changes: int = 0
) -> dict[str, Any]:
    """An effect's ``members``, ``requests`` and least ``minutes`` (under the connection's
    two limits, which the client keeps busy at once) for ``upserts`` batched upserts and
    ``tag_changes`` tags calls per member; ``{}`` when members are unknown."""
    if members is None:
        return {}
    batch_calls = upserts * math.ceil(members / MAX_BATCH_ITEMS)
    tag_calls = tag_changes * math.ceil(members / MAX_TAG_EMAILS)
    limit = connection.rate_limit
    minutes = max(
        (batch_calls + tag_calls) / limit.requests_per_minute,
        tag_calls / limit.tags_per_minute,
    )
    return {"members": members, "requests": batch_calls + tag_calls, "minutes": round(minutes, 2)}


def user_effects(name: str, sides: Sides) -> tuple[Effect, ...]:
    before = sides.base.users.get(name)
    after = sides.head.users.get(name)
    old = before.role if before else None
    new = after.role if after else None
    if old == new:
        return ()
    if new == "admin":
        return (
            Effect("permission_granted", "warning", f"{name} becomes an admin: every connection"),
        )
    if old != "admin" and new is not None:
        return ()
    lost = "is no longer a user" if new is None else "is no longer an admin"
    listed = ": only listed connections" if old == "admin" else ""
    return (Effect("permission_revoked", "info", f"{name} {lost}{listed}"),)


def connection_effects(name: str, sides: Sides) -> tuple[Effect, ...]:
    before = sides.base.connections.get(name)
    after = sides.head.connections.get(name)
    old_users = set(before.allowed_users) if before else set()
    new_users = set(after.allowed_users) if after else set()
    found: list[Effect] = []
    permissions: tuple[tuple[set[str], str, Risk, str], ...] = (
        (new_users - old_users, "permission_granted", "warning", "may now"),
        (old_users - new_users, "permission_revoked", "info", "may no longer"),
    )
    for listed, code, risk, may in permissions:
        found.extend(
            Effect(code, risk, f"{user} {may} use connection '{name}'", path="allowed_users")
            for user in sorted(listed)
        )
    if before and after and before.data_transfer_accepted != after.data_transfer_accepted:
        users = sorted(e.name for e in sides.head.exports.values() if e.connection == name)
        if after.data_transfer_accepted:
            risk = "warning"
            message = (
                f"an admin accepts Omnisend's data-transfer terms for '{name}': its exports"
                " may send"
            )
        else:
            risk = "danger" if users else "warning"
            stopped = f": {', '.join(users)} stop sending" if users else ""
            message = f"the data-transfer acceptance of '{name}' is withdrawn{stopped}"
        found.append(
            Effect("data_transfer_acceptance_changed", risk, message, path="data_transfer_accepted")
        )
    return tuple(found)
