"""The demo's story, told step by step on a console (``omnisync demo``).

See :mod:`omnisync.cli.demo` for what it shows and promises.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from rich.console import Console

from omnisync.clock import SystemClock
from omnisync.config.diagnostics import ConfigInvalid
from omnisync.config.loader import load_config
from omnisync.config.model import Config
from omnisync.demo.cdp import change_profiles, generate_customers, write_cdp
from omnisync.demo.people import LOCALES
from omnisync.demo.world import (
    DEMO_API_KEY,
    Characters,
    pick_characters,
    write_demo_config,
)
from omnisync.emulator import Emulator
from omnisync.engine.clients import ClientPool
from omnisync.engine.history_render import render_runs
from omnisync.engine.plan_render import render_text as render_plan
from omnisync.engine.results import RunResult
from omnisync.engine.run_render import render_text as render_run
from omnisync.engine.runner import ExportRunner, RunnerSettings
from omnisync.mapping import email_problem, normalise_email
from omnisync.masking import mask_email
from omnisync.state import open_state_store

EXIT_OK = 0
EXIT_FAILED = 1

#: What the demo's emulator "already had": a colleague's tags, and an unsubscribe.
OWN_TAGS = ("wholesale", "newsletter-2019")
UNSUBSCRIBED_AT = "2026-01-15T09:30:00Z"


class Demo:
    """The demo's story, step by step (one instance, one play)."""

    def __init__(self, console: Console, directory: Path) -> None:
        self.console = console
        self.directory = directory
        self.database = directory / "cdp.sqlite"
        self.clock = SystemClock()
        self.step = 0

    def say(self, title: str) -> None:
        self.step += 1
        self.console.print(f"\n[bold]{self.step}. {title}[/bold]")

    def play(self, *, profiles: int, seed: int) -> int:
        customers = generate_customers(profiles, seed=seed)
        write_cdp(self.database, customers)
        characters = pick_characters(customers)
        self.console.print(
            "[bold]omnisync demo[/bold]: config.example.yaml's exports, run against a local"
            " Omnisend emulator"
        )
        self.say("A sample customer database")
        emails = [normalise_email(customer.email) for customer in customers]
        invalid = sum(1 for email in emails if email is None or email_problem(email))
        duplicates = len([email for email in emails if email]) - len(set(filter(None, emails)))
        countries = ", ".join(sorted({locale.country for locale in LOCALES}))
        self.console.print(
            f"   {len(customers):,} profiles in {self.database} ({countries}; names in Cyrillic"
            f" and Latin, accents, an emoji or two), {invalid} of them with a broken or missing"
            f" e-mail, {duplicates} repeating an e-mail"
        )
        with Emulator(api_keys=(DEMO_API_KEY,)) as emulator:
            return self._with_emulator(emulator, characters)

    def _with_emulator(self, emulator: Emulator, characters: Characters) -> int:
        self.say(f"A local Omnisend at {emulator.base_url} (the emulator; no account needed)")
        tagged, unsubscribed = characters.tagged, characters.unsubscribed
        assert tagged.email is not None and unsubscribed.email is not None
        emulator.seed_contact(tagged.email, tags=OWN_TAGS)
        emulator.seed_contact(
            unsubscribed.email,
            tags=("complained",),
            status="unsubscribed",
            status_changed_at=UNSUBSCRIBED_AT,
        )
        self.console.print(
            "   It already knows two customers: "
            f"{mask_email(tagged.email)}, tagged {', '.join(OWN_TAGS)} by a colleague, and"
            f" {mask_email(unsubscribed.email)}, who unsubscribed on {UNSUBSCRIBED_AT[:10]}"
            f" (the CDP still says '{unsubscribed.email_status}' as of"
            f" {(unsubscribed.email_status_changed_at or '')[:10]})"
        )
        config_path = write_demo_config(
            self.directory, base_url=emulator.base_url, database=self.database
        )
        try:
            config = load_config(config_path, environ={"HOME": str(self.directory)})
        except ConfigInvalid as error:
            print(f"omnisync demo: the embedded example config is invalid:\n{error}", sys.stderr)
            return EXIT_FAILED
        environ = {
            connection.api_key.name: DEMO_API_KEY
            for connection in config.connections.values()
            if connection.api_key.kind == "env"
        }
        with (
            open_state_store(config.daemon.state_dir) as store,
            ClientPool(clock=self.clock, environ=environ) as clients,
        ):
            runner = ExportRunner(
                config,
                store=store,
                clients=clients,
                clock=self.clock,
                # The emulator answers at once; poll it often so the demo is quick.
                settings=RunnerSettings(poll_interval=0.2),
            )
            first = self._plan_and_run(runner, config, "The plan (omnisync plan)", "First run")
            keep = {tagged.id, unsubscribed.id}
            self.say("A day later in the CDP")
            changes = change_profiles(self.database, keep=keep)
            self.console.print(
                f"   {changes.changed} profiles edited, {changes.added} new, {changes.removed}"
                f" deleted, {changes.left_vip} gold customers dropped to silver"
            )
            second = self._plan_and_run(
                runner, config, "The incremental plan", "Second run: only the changes"
            )
            self.say("What happened in Omnisend")
            healthy = self._report(emulator, characters, first, second)
            self.console.print("\n   History (omnisync history):")
            render_runs(store.runs(limit=10), self.console)
        self.console.print(
            f"\nThe demo's files are in {self.directory}; `omnisync demo` starts fresh each time."
            "\nTo try the commands yourself against a real Omnisend, see config.example.yaml."
        )
        return EXIT_OK if healthy else EXIT_FAILED

    def _plan_and_run(
        self, runner: ExportRunner, config: Config, plan_title: str, run_title: str
    ) -> list[RunResult]:
        self.say(plan_title)
        for name in config.exports:
            self.console.print(_indent(render_plan([runner.plan(name)])), markup=False)
        self.say(f"{run_title} (omnisync export run)")
        results = []
        for name in config.exports:
            result = runner.run(name, trigger="demo")
            results.append(result)
            self.console.print(_indent(render_run(result)), markup=False)
        return results

    def _report(
        self,
        emulator: Emulator,
        characters: Characters,
        first: list[RunResult],
        second: list[RunResult],
    ) -> bool:
        assert emulator.drain()
        for label, results in (("first run", first), ("second run", second)):
            requests = sum(result.counts.requests for result in results)
            upserted = sum(result.counts.upserted for result in results)
            tags_added = sum(result.counts.tagged for result in results)
            tags_removed = sum(result.counts.untagged for result in results)
            self.console.print(
                f"   {label}: {requests:,} requests; {upserted:,} contacts upserted,"
                f" {tags_added:,} tags added, {tags_removed:,} removed"
            )
        by_endpoint = Counter(record.endpoint for record in emulator.request_log())
        self.console.print(
            "   requests by endpoint: "
            + ", ".join(f"{endpoint} {count}" for endpoint, count in sorted(by_endpoint.items()))
        )
        welcomes = len(emulator.welcome_messages())
        self.console.print(
            f"   contacts in Omnisend: {emulator.contact_count():,}; welcome messages sent:"
            f" {welcomes}"
        )
        tagged, unsubscribed = characters.tagged, characters.unsubscribed
        assert tagged.email is not None and unsubscribed.email is not None
        colleague = emulator.contact(tagged.email) or {}
        quitter = emulator.contact(unsubscribed.email) or {}
        own_kept = set(OWN_TAGS) <= set(colleague.get("tags", ()))
        still_unsubscribed = quitter.get("status") == "unsubscribed"
        self.console.print(
            f"   {mask_email(tagged.email)}: tags {sorted(colleague.get('tags', ()))}"
            f" — the colleague's tags {'intact' if own_kept else 'LOST'}"
        )
        self.console.print(
            f"   {mask_email(unsubscribed.email)}: status {quitter.get('status')!r}, tags"
            f" {sorted(quitter.get('tags', ()))} — "
            + ("still unsubscribed" if still_unsubscribed else "RESUBSCRIBED")
        )
        healthy = welcomes == 0 and own_kept and still_unsubscribed
        healthy = healthy and all(r.status == "succeeded" for r in [*first, *second])
        self.console.print(
            "   every promise held" if healthy else "   [red]a promise was broken[/red]"
        )
        return healthy


def _indent(text: str) -> str:
    return "".join(f"   {line}\n" if line else "\n" for line in text.rstrip("\n").split("\n"))
