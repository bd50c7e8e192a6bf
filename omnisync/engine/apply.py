"""The apply phase of a run: map each work item, tally it, hand it to a pipeline.

:func:`apply_work` reads the staged work in segment order, maps every row
that needs an upsert through :class:`~omnisync.mapping.MappingPlan` (the one
place field rules live), feeds the plan tally (so plan and run agree count
for count), and hands upserts, tags and untags to one
:class:`~omnisync.omnisend.pipeline.DeliveryPipeline` per tag. The ledger is
written by a :class:`~omnisync.engine.recorder.LedgerRecorder`, only with what
Omnisend acknowledged.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

from omnisync.clock import Clock
from omnisync.contact import ContactWrite
from omnisync.engine.recorder import FAILURE_SAMPLES, LedgerRecorder
from omnisync.engine.report import PlanTally
from omnisync.engine.runsettings import PipelineSettings
from omnisync.engine.settle import without_repeated_consent
from omnisync.engine.staged import StagedExport
from omnisync.mapping import MappingPlan
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.pipeline import DeliveryPipeline
from omnisync.planning import Leaver, WorkItem
from omnisync.state import LedgerStore

if TYPE_CHECKING:
    from omnisync.engine.attempt import RunAttempt


def apply_work(
    attempt: RunAttempt,
    staged: StagedExport,
    *,
    store: LedgerStore,
    client: OmnisendClient,
    clock: Clock,
    settings: PipelineSettings,
) -> None:
    """Send what ``staged`` needs and record what Omnisend acknowledged.

    Upserts (then the tag, once acknowledged), tag-only items, old tags after
    a rename and leavers' tags go through a :class:`DeliveryPipeline` per tag;
    the ledger is written by a :class:`LedgerRecorder`. ``attempt.stop`` is
    honoured between items: nothing new is handed over, what was sent is
    followed and recorded. Raises what the pipelines raise (an aborting
    ``ApiError``, a ``StateError``).
    """
    export = attempt.export
    recorder = LedgerRecorder(store, export.name, clock=clock, on_change=attempt.changed)
    attempt.recorder = recorder
    tally = PlanTally(staged)
    attempt.tally = tally
    pipelines: dict[str, DeliveryPipeline] = {}
    with ExitStack() as open_pipelines:

        def pipeline_for(tag: str) -> DeliveryPipeline:
            found = pipelines.get(tag)
            if found is None:
                found = open_pipelines.enter_context(
                    DeliveryPipeline(
                        client,
                        tag,
                        listener=recorder,
                        stop=attempt.stop,
                        clock=clock,
                        max_batches_in_flight=settings.max_batches_in_flight,
                        poll_interval=settings.poll_interval,
                        stop_grace=settings.stop_grace,
                    )
                )
                pipelines[tag] = found
            return found

        main = pipeline_for(export.tag)
        now = clock.wall()
        plan = MappingPlan(export, staged.columns)
        stop = attempt.stop

        def apply_item(item: WorkItem) -> bool:
            """Queue one member's work; ``False`` once the pipeline takes no more."""
            outcome = plan.map_work(item, now=now)
            actions = tally.add(item, outcome)
            # An item counts as seen once its work is queued: one the pipeline
            # refused (a stop) stays unreached, so the run reports it pending.
            if actions.upsert:
                assert outcome is not None and isinstance(outcome.result, ContactWrite)
                write = outcome.result
                if write.email in attempt.maybe_sent and write.consent is not None:
                    # A killed run may have sent this very write: don't repeat its consent.
                    write = without_repeated_consent(write, client.get_contact(write.email))
                recorder.expect(item.email, item.fingerprint, then_tag=actions.tag)
                if not main.upsert(write, then_tag=actions.tag):
                    return False
                attempt.items_seen += 1
                attempt.upserts_queued += 1
                attempt.then_tag_queued += actions.tag
            elif actions.tag:
                if not main.add_tag(item.email):
                    return False
                attempt.items_seen += 1
                attempt.tag_adds_queued += 1
            else:
                attempt.items_seen += 1  # invalid: never sent, counted by the tally
                return True
            if actions.remove_old_tag is not None:
                if not pipeline_for(actions.remove_old_tag).remove_tag(item.email):
                    return False
                attempt.removes_queued += 1
            return True

        for item in staged.work():
            if stop.is_set() or not apply_item(item):
                break
        samples: list[Leaver] = []
        for leaver in staged.leavers():
            if stop.is_set():
                break
            if len(samples) < FAILURE_SAMPLES:
                samples.append(leaver)
            if not pipeline_for(leaver.tag).remove_tag(leaver.email):
                break
            attempt.leavers_seen += 1
            attempt.removes_queued += 1
        tally.add_leavers(samples)
        attempt.changed()
        # The export's own pipeline last: old tags are removed while it drains.
        for tag, pipeline in list(pipelines.items()):
            if tag != export.tag:
                pipeline.finish()
        main.finish()
        attempt.stopped = stop.is_set()
