"""The demo's story, told step by step on a console (``omnisync demo``).

The config is ``config.example.yaml`` itself (embedded as ``example.yaml``,
kept identical by a test) with each connection's ``base_url`` the local
emulator's, the SQLite source the demo's database and ``daemon.state_dir`` in
the demo directory. The emulator's throwaway API key reaches the runner in its
own environment mapping. See :mod:`omnisync.cli.demo` for what the demo promises.
"""

from __future__ import annotations

import shutil
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from omnisync.clock import SystemClock
from omnisync.config.diagnostics import ConfigInvalid
from omnisync.config.loader import load_config
from omnisync.demo.cdp import LOCALES, Customer, change_profiles, generate_customers, write_cdp
from omnisync.emails import email_problem, normalise_email
from omnisync.emulator import Emulator
from omnisync.engine.clients import ClientPool
from omnisync.engine.history_render import render_runs
from omnisync.engine.plan_render import render_text as render_plan
from omnisync.engine.report import plan_export
from omnisync.engine.results import RunResult
from omnisync.engine.run_render import render_text as render_run
from omnisync.engine.runner import ExportRunner, RunnerSettings
from omnisync.masking import mask_email
from omnisync.state import LedgerStore, open_state_store

DEMO_API_KEY = "omnisync-demo-key"
#: Files and directories the demo creates in its directory, and removes on a new run.
DEMO_FILES = ("cdp.sqlite", "cdp.sqlite-journal", "config.yaml", "state")
#: What the demo's emulator "already had": a colleague's tags, and an unsubscribe.
OWN_TAGS = ("wholesale", "newsletter-2019")
UNSUBSCRIBED_AT = "2026-01-15T09:30:00Z"


def example_config_text() -> str:
    return resources.files("omnisync.demo").joinpath("example.yaml").read_text(encoding="utf-8")


def write_demo_config(directory: Path, *, base_url: str, database: Path) -> Path:
    """Write the example config, pointed at the emulator and the demo's files; return its path."""
    document: dict[str, Any] = yaml.safe_load(example_config_text())
    for connection in document["connections"].values():
        connection["base_url"] = base_url
    for source in document["sources"].values():
        if source.get("kind") == "sqlite":
            source["path"] = str(database)
    document.setdefault("daemon", {})["state_dir"] = str(directory / "state")
    path = directory / "config.yaml"
    header = "# Written by `omnisync demo`: config.example.yaml pointed at the local emulator.\n"
    path.write_text(
        header + yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return path


def clear_demo_directory(directory: Path) -> None:
    """Remove what an earlier demo left in ``directory`` (only the demo's own files)."""
    for name in DEMO_FILES:
        target = directory / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def pick_characters(customers: list[Customer]) -> tuple[Customer, Customer]:
    """The two customers Omnisend already knows: a VIP (gold, value ≥ 1000) a colleague
    tagged by hand, and a subscribed Ukrainian who unsubscribed in Omnisend; both with
    clean, unique e-mails."""
    seen = Counter(normalise_email(customer.email) for customer in customers)

    def clean(customer: Customer) -> bool:
        email = normalise_email(customer.email)
        return email == customer.email and not email_problem(email or "") and seen[email] == 1

    vip = next(
        c for c in customers if clean(c) and c.loyalty_tier == "gold" and c.lifetime_value >= 1000
    )
    ukrainian = next(
        c
        for c in customers
        if clean(c)
        and c.country == "Ukraine"
        and c.email_status == "subscribed"
        and c.email_status_changed_at is not None
        and c.loyalty_tier != "gold"
    )
    return vip, ukrainian


class Demo:
    """The demo's story, step by step (one instance, one play)."""

    def __init__(self, console: Console, directory: Path, *, drain_seconds: float = 10.0) -> None:
        self.console = console
        self.directory = directory
        #: How long the report waits (real seconds) for the emulator to apply every call.
        self.drain_seconds = drain_seconds
        self.database = directory / "cdp.sqlite"
        self.clock = SystemClock()
        self.step = 0

    def say(self, title: str) -> None:
        self.step += 1
        self.console.print(f"\n[bold]{self.step}. {title}[/bold]")

    def play(self, *, profiles: int) -> bool:
        """Tell the story; whether every promise held."""
        customers = generate_customers(profiles)
        write_cdp(self.database, customers)
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
            return self._with_emulator(emulator, *pick_characters(customers))

    def _with_emulator(self, emulator: Emulator, tagged: Customer, quitter: Customer) -> bool:
        self.say(f"A local Omnisend at {emulator.base_url} (the emulator; no account needed)")
        assert tagged.email is not None and quitter.email is not None
        emulator.seed_contact(tagged.email, tags=OWN_TAGS)
        emulator.seed_contact(
            quitter.email,
            tags=("complained",),
            status="unsubscribed",
            status_changed_at=UNSUBSCRIBED_AT,
        )
        self.console.print(
            "   It already knows two customers: "
            f"{mask_email(tagged.email)}, tagged {', '.join(OWN_TAGS)} by a colleague, and"
            f" {mask_email(quitter.email)}, who unsubscribed on {UNSUBSCRIBED_AT[:10]}"
            f" (the CDP still says '{quitter.email_status}' as of"
            f" {(quitter.email_status_changed_at or '')[:10]})"
        )
        config_path = write_demo_config(
            self.directory, base_url=emulator.base_url, database=self.database
        )
        try:
            config = load_config(config_path, environ={"HOME": str(self.directory)})
        except ConfigInvalid as error:
            self.console.print(f"the embedded example config is invalid:\n{error}", markup=False)
            return False
        environ = {
            connection.api_key.name: DEMO_API_KEY
            for connection in config.connections.values()
            if connection.api_key.kind == "env"
        }
        with (
            open_state_store(config.daemon.state_dir) as store,
            ClientPool(clock=self.clock, environ=environ) as clients,
        ):
            # The emulator answers at once; poll it often so the demo is quick.
            settings = RunnerSettings(poll_interval=0.2)
            runner = ExportRunner(
                config, store=store, clients=clients, clock=self.clock, settings=settings
            )
            first = self._plan_and_run(runner, store, "The plan (omnisync plan)", "First run")
            self.say("A day later in the CDP")
            changes = change_profiles(self.database, keep={tagged.id, quitter.id})
            self.console.print(
                f"   {changes.changed} profiles edited, {changes.added} new, {changes.removed}"
                f" deleted, {changes.left_vip} gold customers dropped to silver"
            )
            second = self._plan_and_run(
                runner, store, "The incremental plan", "Second run: only the changes"
            )
            self.say("What happened in Omnisend")
            healthy = self._report(
                emulator, tagged.email, quitter.email, {"first": first, "second": second}
            )
            self.console.print("\n   History (omnisync history):")
            render_runs(store.runs(limit=10), self.console)
        self.console.print(
            f"\nThe demo's files are in {self.directory}; `omnisync demo` starts fresh each time."
            "\nTo try the commands yourself against a real Omnisend, see config.example.yaml."
        )
        return healthy

    def _plan_and_run(
        self, runner: ExportRunner, store: LedgerStore, plan_title: str, run_title: str
    ) -> list[RunResult]:
        self.say(plan_title)
        for name in runner.config.exports:
            report = plan_export(runner.config, name, store=store, now=self.clock.wall())
            self.console.print(_indent(render_plan([report])), markup=False)
        self.say(f"{run_title} (omnisync export run)")
        results = [runner.run(name, trigger="demo") for name in runner.config.exports]
        for result in results:
            self.console.print(_indent(render_run(result)), markup=False)
        return results

    def _report(
        self, emulator: Emulator, tagged: str, quitter: str, runs: dict[str, list[RunResult]]
    ) -> bool:
        # Omnisend applies batches and tag calls after answering; read it once all are.
        applied = emulator.drain(self.drain_seconds)
        if not applied:
            self.console.print(
                "   [red]the emulator had not applied every call after"
                f" {self.drain_seconds:g} s[/red]"
            )
        for label, results in runs.items():
            counts = [result.counts for result in results]
            self.console.print(
                f"   {label} run: {sum(c.requests for c in counts):,} requests;"
                f" {sum(c.upserted for c in counts):,} contacts upserted,"
                f" {sum(c.tagged for c in counts):,} tags added,"
                f" {sum(c.untagged for c in counts):,} removed"
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
        colleague = emulator.contact(tagged) or {}
        unsubscribed = emulator.contact(quitter) or {}
        own_kept = set(OWN_TAGS) <= set(colleague.get("tags", ()))
        still_unsubscribed = unsubscribed.get("status") == "unsubscribed"
        self.console.print(
            f"   {mask_email(tagged)}: tags {sorted(colleague.get('tags', ()))}"
            f" — the colleague's tags {'intact' if own_kept else 'LOST'}"
        )
        self.console.print(
            f"   {mask_email(quitter)}: status {unsubscribed.get('status')!r}, tags"
            f" {sorted(unsubscribed.get('tags', ()))} — "
            + ("still unsubscribed" if still_unsubscribed else "RESUBSCRIBED")
        )
        succeeded = all(r.status == "succeeded" for results in runs.values() for r in results)
        healthy = applied and welcomes == 0 and own_kept and still_unsubscribed and succeeded
        self.console.print(
            "   every promise held" if healthy else "   [red]a promise was broken[/red]"
        )
        return healthy


def _indent(text: str) -> str:
    return "".join(f"   {line}\n" if line else "\n" for line in text.rstrip("\n").split("\n"))
