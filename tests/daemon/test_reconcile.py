from __future__ import annotations

from dataclasses import replace

from omnisync.config.model import Connection, FieldMapping
from omnisync.daemon.reconcile import (
    ScheduleJob,
    StopRun,
    UnscheduleJob,
    changed_exports,
    desired_exports,
    reconcile,
)
from tests.daemon.builders import config, cron, every, export


def apply(actions, scheduled):
    """What the scheduler holds after applying ``actions``: the shell's job, in miniature."""
    result = dict(scheduled)
    for action in actions:
        if isinstance(action, ScheduleJob):
            result[action.export] = action.timing
        elif isinstance(action, UnscheduleJob):
            result.pop(action.export)
    return result


def test_start_schedules_every_enabled_export_with_a_schedule():
    desired = desired_exports(
        config(
            export("a", schedule=every(10)),
            export("b", schedule=cron("*/5 * * * *", "Europe/Kyiv")),
            export("c"),  # on demand only
            export("d", schedule=every(10), enabled=False),
        )
    )
    actions = reconcile(desired, {}, {})
    assert actions == (
        ScheduleJob(export="a", timing=every(10), existing=False),
        ScheduleJob(export="b", timing=cron("*/5 * * * *", "Europe/Kyiv"), existing=False),
    )


def test_nothing_to_do_when_nothing_changed():
    desired = desired_exports(config(export("a", schedule=every(10)), export("c")))
    scheduled = apply(reconcile(desired, {}, {}), {})
    assert reconcile(desired, desired, scheduled) == ()


def test_removed_export_is_unscheduled_and_its_run_stopped_for_good():
    before = desired_exports(
        config(export("a", schedule=every(10)), export("b", schedule=every(5)))
    )
    after = desired_exports(config(export("b", schedule=every(5))))
    scheduled = apply(reconcile(before, {}, {}), {})
    actions = reconcile(after, before, scheduled)
    assert actions == (StopRun("a", "removed", rerun=False), UnscheduleJob("a"))
    assert apply(actions, scheduled) == {"b": every(5)}


def test_disabled_export_is_unscheduled_and_stopped():
    before = desired_exports(config(export("a", schedule=every(10))))
    after = desired_exports(config(export("a", schedule=every(10), enabled=False)))
    actions = reconcile(after, before, apply(reconcile(before, {}, {}), {}))
    assert actions == (StopRun("a", "disabled", rerun=False), UnscheduleJob("a"))


def test_retiming_never_interrupts_the_run():
    before = desired_exports(config(export("a", schedule=cron("0 * * * *"))))
    after = desired_exports(config(export("a", schedule=cron("30 * * * *"))))
    scheduled = apply(reconcile(before, {}, {}), {})
    assert reconcile(after, before, scheduled) == (
        ScheduleJob("a", cron("30 * * * *", "UTC"), existing=True),
    )


def test_renaming_a_schedule_with_the_same_timing_changes_nothing():
    before = desired_exports(config(export("a", schedule=every(60))))
    renamed = replace(every(60), name="hourly")
    after = desired_exports(config(export("a", schedule=renamed)))
    scheduled = apply(reconcile(before, {}, {}), {})
    assert reconcile(after, before, scheduled) == ()


def test_changed_definition_stops_and_reruns_but_keeps_the_job():
    before = desired_exports(
        config(export("a", schedule=every(10)), export("b", schedule=every(10)))
    )
    after = desired_exports(
        config(
            export("a", schedule=every(10), mapping=FieldMapping(email="email", city="town")),
            export("b", schedule=every(10)),
        )
    )
    scheduled = apply(reconcile(before, {}, {}), {})
    # b did not change: nothing at all happens to it, its run included.
    assert reconcile(after, before, scheduled) == (StopRun("a", "changed", rerun=True),)


def test_a_connection_change_counts_as_a_definition_change():
    base = config(export("a", schedule=every(10)))
    moved = replace(
        base,
        connections={"main": replace(base.connections["main"], base_url="http://127.0.0.1:1/api")},
    )
    before, after = desired_exports(base), desired_exports(moved)
    scheduled = apply(reconcile(before, {}, {}), {})
    assert reconcile(after, before, scheduled) == (StopRun("a", "changed", rerun=True),)
    unrelated = replace(
        base,
        connections={
            **base.connections,
            "other": Connection(
                name="other", display_name="Other", api_key=base.connections["main"].api_key
            ),
        },
    )
    assert reconcile(desired_exports(unrelated), before, scheduled) == ()


def test_schedule_dropped_keeps_export_on_demand():
    before = desired_exports(config(export("a", schedule=every(10))))
    after = desired_exports(config(export("a")))
    scheduled = apply(reconcile(before, {}, {}), {})
    assert reconcile(after, before, scheduled) == (UnscheduleJob("a"),)


def test_tick_repairs_drift_both_ways():
    desired = desired_exports(config(export("a", schedule=every(10)), export("b")))
    drifted = {"b": every(10), "ghost": every(1)}
    actions = reconcile(desired, desired, drifted)
    assert actions == (
        ScheduleJob("a", every(10), existing=False),
        UnscheduleJob("b"),
        UnscheduleJob("ghost"),
    )
    assert apply(actions, drifted) == {"a": every(10)}


def test_reenabling_starts_no_stop():
    before = desired_exports(config(export("a", schedule=every(10), enabled=False)))
    after = desired_exports(config(export("a", schedule=every(10))))
    assert reconcile(after, before, {}) == (ScheduleJob("a", every(10), existing=False),)


def test_changed_exports_for_the_log_line():
    before = desired_exports(config(export("a", schedule=every(10)), export("b")))
    after = desired_exports(config(export("a", schedule=every(20)), export("c")))
    assert changed_exports(after, before) == {"added": ("c",), "removed": ("b",), "changed": ("a",)}
