"""``omnisync demo`` as a user runs it, and the pieces it is made of.

The demo is always a process of its own (it runs exports, an emulator and its threads);
the history read afterwards runs through its entry point in this process.
"""

from __future__ import annotations

import dataclasses
import io
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from omnisync.clock import FakeClock
from omnisync.config.loader import load_config
from omnisync.demo.cdp import change_profiles, generate_customers, write_cdp
from omnisync.demo.story import (
    OWN_TAGS,
    Demo,
    example_config_text,
    pick_characters,
    write_demo_config,
)
from omnisync.emails import email_problem, normalise_email
from omnisync.emulator import Emulator
from tests.cli import run_cli_here

REPOSITORY = Path(__file__).resolve().parents[2]


def demo(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omnisync", "demo", "--dir", str(directory), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def numbers(output: str) -> list[str]:
    """The lines that say what happened, without ports, times, revisions and request
    counts (how often batches are polled depends on when the emulator finishes them)."""
    wanted = ("   first run:", "   second run:", "   contacts in Omnisend:", "     upserts:",
              "     tags:", "     segment:")  # fmt: skip
    return [
        re.sub(r"[\d,]+ requests;", "N requests;", line)
        for line in output.splitlines()
        if line.startswith(wanted)
    ]


def test_the_demo_tells_the_whole_story_and_can_be_run_again(tmp_path: Path) -> None:
    directory = tmp_path / "demo-data"
    directory.mkdir()
    (directory / "notes.txt").write_text("mine", encoding="utf-8")
    first = demo(directory)
    assert first.returncode == 0, first.stdout + first.stderr
    output = first.stdout
    for expected in (
        "1. A sample customer database",
        "3. The plan (omnisync plan)",
        "4. First run (omnisync export run)",
        "6. The incremental plan",
        "7. Second run: only the changes (omnisync export run)",
        "welcome messages sent: 0",
        "the colleague's tags intact",
        "still unsubscribed",
        "every promise held",
    ):
        assert expected in output, expected
    assert "export vip: succeeded" in output and "export ukraine-newsletter: succeeded" in output
    # Only the changes go out the second time.
    second_run = re.search(r"second run: (\d+) requests; (\d+) contacts upserted", output)
    first_run = re.search(r"first run: (\d+) requests; ([\d,]+) contacts upserted", output)
    assert second_run is not None and first_run is not None
    assert 0 < int(second_run[2]) < int(first_run[2].replace(",", "")) / 10
    # E-mails appear masked only.
    addresses = {normalise_email(c.email) for c in generate_customers(3000) if c.email}
    assert not [address for address in addresses if address and address in output]
    assert "Traceback" not in first.stderr

    again = demo(directory)
    assert again.returncode == 0, again.stderr
    assert numbers(again.stdout) == numbers(output)  # fresh each time, same story
    assert (directory / "notes.txt").read_text(encoding="utf-8") == "mine"
    # What the demo left, read through history's entry point in this process.
    history = run_cli_here("history", "--state-dir", str(directory / "state"), "--format", "json")
    assert history.returncode == 0, history.stderr
    assert history.stdout.count('"trigger": "demo"') == 4


def test_bad_demo_arguments_are_usage_errors(tmp_path: Path) -> None:
    done = demo(tmp_path, "--profiles", "5")
    assert done.returncode == 2 and "--profiles" in done.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    blocked = demo(blocker)
    assert blocked.returncode == 1 and "cannot use" in blocked.stderr
    assert "Traceback" not in blocked.stderr


def test_the_embedded_config_is_the_example() -> None:
    example = REPOSITORY / "config.example.yaml"
    assert example_config_text() == example.read_text(encoding="utf-8")


def test_the_demo_config_is_the_example_pointed_at_the_demo(tmp_path: Path) -> None:
    database = tmp_path / "cdp.sqlite"
    path = write_demo_config(tmp_path, base_url="http://127.0.0.1:9/api", database=database)
    environ = {"HOME": str(tmp_path)}
    demo_config = load_config(path, environ=environ)
    example = load_config(REPOSITORY / "config.example.yaml", environ=environ)
    assert demo_config.exports == example.exports
    assert demo_config.segments == example.segments
    assert demo_config.users == example.users
    [connection] = demo_config.connections.values()
    assert connection.base_url == "http://127.0.0.1:9/api"
    [example_connection] = example.connections.values()
    assert dataclasses.replace(connection, base_url=example_connection.base_url) == (
        example_connection
    )
    assert [source.path for source in demo_config.sources.values()] == [str(database)]
    assert demo_config.daemon.state_dir == str(tmp_path / "state")


def test_the_sample_customers_look_like_a_real_cdp() -> None:
    customers = generate_customers(3000)
    assert customers == generate_customers(3000)  # deterministic
    emails = [normalise_email(customer.email) for customer in customers]
    invalid = sum(1 for email in emails if email is None or email_problem(email))
    duplicates = sum(count - 1 for count in Counter(filter(None, emails)).values())
    assert 10 <= invalid <= 60 and 10 <= duplicates <= 90
    names = " ".join(f"{c.first_name} {c.last_name}" for c in customers)
    for sample in ("Олена", "Olena", "Łukasz", "Žukauskaitė", "Müller", "Núñez", "☀️"):
        assert sample in names, sample
    assert {"Ukraine", "Poland", "Deutschland"} <= {customer.country for customer in customers}
    assert Counter(customer.loyalty_tier for customer in customers)["gold"] > 300


def test_a_day_of_changes(tmp_path: Path) -> None:
    database = tmp_path / "cdp.sqlite"
    customers = generate_customers(1000)
    write_cdp(database, customers)
    tagged, unsubscribed = pick_characters(customers)
    keep = {tagged.id, unsubscribed.id}
    before = {row[0]: row for row in sqlite3.connect(database).execute("SELECT * FROM customers")}
    summary = change_profiles(database, keep=keep)
    after = {row[0]: row for row in sqlite3.connect(database).execute("SELECT * FROM customers")}
    assert len(set(before) - set(after)) == summary.removed > 0
    assert len(set(after) - set(before)) == summary.added > 0
    edited = [key for key in set(before) & set(after) if before[key] != after[key]]
    assert len(edited) == summary.changed + summary.left_vip
    for key in keep:
        assert before[key] == after[key]
    assert tagged.loyalty_tier == "gold"
    assert unsubscribed.country == "Ukraine"


@pytest.mark.parametrize("count", [100, 250])
def test_small_demos_still_find_their_characters(count: int) -> None:
    tagged, unsubscribed = pick_characters(generate_customers(count))
    assert tagged.email != unsubscribed.email


def test_the_report_counts_a_call_the_emulator_never_applied_as_a_broken_promise(
    tmp_path: Path,
) -> None:
    clock = FakeClock()  # a tag call is applied after a delay this clock never reaches
    output = io.StringIO()
    demo_story = Demo(Console(file=output, width=200), tmp_path, drain_seconds=0.5)
    with Emulator(api_keys=("demo-key",), clock=clock) as emulator:
        emulator.seed_contact("colleague@example.com", tags=OWN_TAGS)
        emulator.seed_contact("quitter@example.com", status="unsubscribed")
        response = httpx.post(
            f"{emulator.base_url}/contacts/tags",
            json={"emails": ["colleague@example.com"], "tags": ["vip"]},
            headers={
                "Authorization": "Omnisend-API-Key demo-key",
                "Omnisend-Version": "2026-03-15",
            },
        )
        assert response.status_code == 202
        people = ("colleague@example.com", "quitter@example.com")
        assert not demo_story._report(emulator, *people, {})
        assert "had not applied every call after 0.5 s" in output.getvalue()
        assert "a promise was broken" in output.getvalue()
        clock.advance(1.0)
        assert demo_story._report(emulator, *people, {})
        assert output.getvalue().endswith("every promise held\n")
