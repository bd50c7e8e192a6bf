"""The demo's world: a sample CDP, a local Omnisend, and the example config pointed at them.

The config is ``config.example.yaml`` itself (embedded as ``example.yaml``,
kept identical by a test), with three things changed for the demo: each
connection's ``base_url`` is the local emulator's, the SQLite source's path
is the demo's database, and ``daemon.state_dir`` lives in the demo
directory. The API key is the emulator's demo key, handed to the runner in
its own environment mapping (the process environment is left alone).
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from omnisync.demo.cdp import Customer
from omnisync.mapping import email_problem, normalise_email

#: The API key the demo's emulator accepts (a throwaway value, not a secret).
DEMO_API_KEY = "omnisync-demo-key"
#: Files and directories the demo creates in its directory, and removes on a new run.
DEMO_FILES = ("cdp.sqlite", "cdp.sqlite-journal", "config.yaml", "state")


def example_config_text() -> str:
    """The embedded copy of ``config.example.yaml``."""
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


@dataclass(frozen=True)
class Characters:
    """Two customers Omnisend already knows before the demo's first run."""

    tagged: Customer  #: a VIP customer someone tagged in Omnisend by hand
    unsubscribed: Customer  #: a Ukrainian customer who unsubscribed in Omnisend


def pick_characters(customers: list[Customer]) -> Characters:
    """A VIP (gold, value ≥ 1000) and a subscribed Ukrainian, both with clean, unique e-mails."""
    seen = Counter(normalise_email(customer.email) for customer in customers)

    def clean(customer: Customer) -> bool:
        email = normalise_email(customer.email)
        return (
            email is not None
            and email == customer.email
            and email_problem(email) is None
            and seen[email] == 1
        )

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
    return Characters(tagged=vip, unsubscribed=ukrainian)
