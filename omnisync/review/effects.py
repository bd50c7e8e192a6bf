"""What a change does in Omnisend: effects with stable codes and risks. Pure.

Per export (comparing the export and everything it depends on: its segment
and that segment's source, its connection's brand, its schedule):

==============================  =======  ==================================================
code                            risk     when
==============================  =======  ==================================================
first_export                    warning  an export is added, or enabled again
resend_all_members              warning  what is sent for each member changes (the mapping,
                                         a custom property, consent: the fingerprint spec)
retag_all_members               warning  the export's tag changes
untag_on_leave_changed          warning  ``on_leave`` keep → untag (info the other way)
welcome_messages_enabled        danger   ``send_welcome_message`` becomes true
consent_changed                 warning  the consent columns or label change
moves_brand                     danger   the export's connection reaches another brand
membership_may_change           warning  the segment's query, source or key changes
export_removed                  warning  an export is removed
export_disabled                 warning  an export is disabled
schedule_changed                info     the schedule changes (runs per day before/after)
==============================  =======  ==================================================

Per user and connection: ``permission_granted`` (warning) and
``permission_revoked`` (info) when a user gains or loses a connection or a
role, and ``data_transfer_acceptance_changed`` (warning; danger when revoked
while exports use the connection).

A brand is what Omnisend's limits and contacts belong to: the connection's
base URL and API key reference (the key itself is never read here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from omnisync.config.model import Config, Connection, Export, User
from omnisync.fingerprint import spec_digest
from omnisync.review import cost as costs
from omnisync.review.compare import Relocate, flatten, same
from omnisync.review.model import Effect, MemberCounts, Risk
from omnisync.review.schedules import describe_runs, runs_per_day


@dataclass(frozen=True)
class Sides:
    """The two configs compared and the member counts at hand."""

    base: Config
    head: Config
    members: MemberCounts
    #: Paths of each side as the working tree holds them (see ``compare``).
    relocate_base: Relocate = same
    relocate_head: Relocate = same


def export_effects(name: str, sides: Sides) -> tuple[Effect, ...]:
    """The effects of the change to export ``name`` (added, removed or changed)."""
    before = sides.base.exports.get(name)
    after = sides.head.exports.get(name)
    members = sides.members(name)
    if before is None and after is not None:
        return _added(after, sides.head, members)
    if after is None and before is not None:
        return (_removed(before, members),)
    if before is None or after is None:
        return ()
    found: list[Effect] = []
    limit = sides.head.connections.get(after.connection)
    if before.enabled and not after.enabled:
        found.append(_disabled(before, members))
    if not before.enabled and after.enabled:
        found.append(_reenabled(after, members))
    if sides.base.brand_of(name) != sides.head.brand_of(name):
        found.append(_moves_brand(before, after, members))
    if spec_digest(before) != spec_digest(after):
        found.append(
            _costed(
                "resend_all_members",
                "warning",
                "what is sent for each member changes: every member is upserted again",
                members=members,
                cost_of=costs.upserts,
                connection=limit,
                path="mapping",
            )
        )
    if before.consent != after.consent:
        found.append(_consent(before, after))
    if before.tag != after.tag:
        found.append(
            _costed(
                "retag_all_members",
                "warning",
                f"the tag changes from '{before.tag}' to '{after.tag}': every member gets"
                f" '{after.tag}', then loses '{before.tag}'",
                members=members,
                cost_of=lambda count: costs.tag_changes(count, tags=2),
                connection=limit,
                path="tag",
            )
        )
    if before.on_leave != after.on_leave:
        found.append(_on_leave(before, after))
    if not before.send_welcome_message and after.send_welcome_message:
        found.append(_welcome())
    if _membership(sides.base, before, sides.relocate_base) != _membership(
        sides.head, after, sides.relocate_head
    ):
        found.append(
            Effect(
                "membership_may_change",
                "warning",
                f"the segment ('{after.segment}': its query, source or key) changes: members"
                " may join (upserted and tagged) or leave; run `omnisync plan` to count them",
                path="segment",
            )
        )
    if before.schedule != after.schedule:
        found.append(_schedule(before, after))
    return tuple(found)


def _added(export: Export, head: Config, members: int | None) -> tuple[Effect, ...]:
    found: list[Effect] = []
    if export.enabled:
        counted = f"{members} members already in its ledger" if members else "every member"
        found.append(
            Effect(
                "first_export",
                "warning",
                f"a new export to '{export.connection}': {counted} will be upserted and"
                f" tagged '{export.tag}'; run `omnisync plan` to count the segment",
            )
        )
    else:
        found.append(
            Effect("first_export", "info", "a new export, disabled: nothing is sent until enabled")
        )
    if export.send_welcome_message:
        found.append(_welcome())
    return tuple(found)


def _removed(export: Export, members: int | None) -> Effect:
    held = f"its {members} contacts" if members is not None else "its contacts"
    return Effect(
        "export_removed",
        "warning",
        f"no more runs; nothing is deleted: {held} keep tag '{export.tag}' in Omnisend, and its"
        " ledger stays in the state store (an export of the same name resumes from it)",
        members=members,
    )


def _disabled(export: Export, members: int | None) -> Effect:
    held = f"its {members} contacts" if members is not None else "its contacts"
    return Effect(
        "export_disabled",
        "warning",
        f"no more runs until enabled again: {held} keep tag '{export.tag}' and stop following"
        " the segment; the ledger stays",
        members=members,
        path="enabled",
    )


def _reenabled(export: Export, members: int | None) -> Effect:
    resumed = (
        f"it resumes from the {members} members of its ledger: everything that changed"
        " since is sent"
        if members
        else "every member will be upserted and tagged"
    )
    return Effect("first_export", "warning", f"enabled again: {resumed}", path="enabled")


def _moves_brand(before: Export, after: Export, members: int | None) -> Effect:
    return Effect(
        "moves_brand",
        "danger",
        f"moves from connection '{before.connection}' to '{after.connection}', another brand:"
        " the new brand gets a first export (every member upserted and tagged); the old"
        f" brand keeps its contacts and tag '{before.tag}', and the export's state is reset",
        members=members,
        path="connection",
    )


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


def _on_leave(before: Export, after: Export) -> Effect:
    if after.on_leave == "untag":
        return Effect(
            "untag_on_leave_changed",
            "warning",
            f"on_leave keep → untag: contacts that left the segment, earlier ones included,"
            f" lose tag '{after.tag}' at the next run",
            path="on_leave",
        )
    return Effect(
        "untag_on_leave_changed",
        "info",
        f"on_leave untag → keep: contacts that leave the segment keep tag '{after.tag}'",
        path="on_leave",
    )


def _welcome() -> Effect:
    return Effect(
        "welcome_messages_enabled",
        "danger",
        "send_welcome_message: every contact this export creates gets the brand's welcome"
        " message from Omnisend",
        path="send_welcome_message",
    )


def _schedule(before: Export, after: Export) -> Effect:
    old, new = runs_per_day(before.schedule), runs_per_day(after.schedule)
    return Effect(
        "schedule_changed",
        "info",
        f"runs {describe_runs(old)} → {describe_runs(new)}"
        f" ({_schedule_text(before)} → {_schedule_text(after)})",
        path="schedule",
    )


def _schedule_text(export: Export) -> str:
    return export.schedule.describe() if export.schedule is not None else "no schedule"


def _membership(config: Config, export: Export, relocate: Relocate) -> object:
    """What decides the export's members: its segment's query and key, and the source."""
    segment = config.segments.get(export.segment)
    if segment is None:
        return export.segment
    source = config.sources.get(segment.source)
    located = None if source is None else flatten(source, relocate=relocate)
    return (segment.query, segment.key, located)


def _costed(
    code: str,
    risk: Risk,
    message: str,
    *,
    members: int | None,
    cost_of: Callable[[int], costs.Cost],
    connection: Connection | None,
    path: str,
) -> Effect:
    if members is None or connection is None:
        return Effect(code, risk, message, path=path)
    cost = cost_of(members)
    return Effect(
        code,
        risk,
        message,
        members=members,
        requests=cost.requests,
        minutes=round(cost.minutes(connection.rate_limit), 2),
        path=path,
    )


# -- users and connections ------------------------------------------------------------


def user_effects(name: str, sides: Sides) -> tuple[Effect, ...]:
    before: User | None = sides.base.users.get(name)
    after: User | None = sides.head.users.get(name)
    old = before.role if before else None
    new = after.role if after else None
    if old == new:
        return ()
    if new == "admin":
        return (
            Effect("permission_granted", "warning", f"{name} becomes an admin: every connection"),
        )
    if old == "admin":
        lost = "is no longer a user" if new is None else "is no longer an admin"
        return (Effect("permission_revoked", "info", f"{name} {lost}: only listed connections"),)
    if new is None:
        return (Effect("permission_revoked", "info", f"{name} is no longer a user"),)
    return ()


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
    accepted_before = before.data_transfer_accepted if before else None
    accepted_after = after.data_transfer_accepted if after else None
    if before is not None and after is not None and accepted_before != accepted_after:
        users = sorted(e.name for e in sides.head.exports.values() if e.connection == name)
        if accepted_after:
            found.append(
                Effect(
                    "data_transfer_acceptance_changed",
                    "warning",
                    f"an admin accepts Omnisend's data-transfer terms for '{name}': its exports"
                    " may send",
                    path="data_transfer_accepted",
                )
            )
        else:
            stopped = f": {', '.join(users)} stop sending" if users else ""
            found.append(
                Effect(
                    "data_transfer_acceptance_changed",
                    "danger" if users else "warning",
                    f"the data-transfer acceptance of '{name}' is withdrawn{stopped}",
                    path="data_transfer_accepted",
                )
            )
    return tuple(found)
