"""A whole-number float (``4e2``, ``400.0``) where the schema says ``integer``.

JSON Schema's ``integer`` admits a number with nothing after the point, in
``omnisync validate`` and check-jsonschema alike, so such a config is valid; the built
config must then hold the ``int`` it means, or runs crash on a float.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omnisync.clock import ScaledClock
from omnisync.config.model import Config
from omnisync.config.schema import load_schema
from omnisync.emulator import Emulator
from tests.config.helpers import load_text, replaced
from tests.engine.helpers import omnisync, people, write_config, write_segment

#: Every integer the schema has, written as a whole-number float, and where the built
#: config holds it.
INTEGER_FIELDS: dict[tuple[str, str], tuple[str, Callable[[Config], object], int]] = {
    ("rate_limit", "requests_per_minute"): (
        "rate_limit: {requests_per_minute: 4e2, tags_per_minute: 60.0}",
        lambda config: config.connections["main"].rate_limit.requests_per_minute,
        400,
    ),
    ("rate_limit", "tags_per_minute"): (
        "",  # written with requests_per_minute
        lambda config: config.connections["main"].rate_limit.tags_per_minute,
        60,
    ),
    ("export", "max_profiles"): (
        "max_profiles: 1e0",
        lambda config: config.exports["vip"].max_profiles,
        1,
    ),
    ("guards", "min_members"): (
        "guards: {min_members: 1.5e1}",
        lambda config: config.exports["vip"].guards.min_members,
        15,
    ),
}


def integer_properties(node: Any, definition: str = "") -> Iterator[tuple[str, str]]:
    """(definition, property) of every property whose schema says ``integer``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$defs":
                for name, subschema in value.items():
                    yield from integer_properties(subschema, name)
            elif key == "properties":
                for name, subschema in value.items():
                    if isinstance(subschema, dict) and subschema.get("type") == "integer":
                        yield definition, name
                    yield from integer_properties(subschema, definition)
            else:
                yield from integer_properties(value, definition)
    elif isinstance(node, list):
        for item in node:
            yield from integer_properties(item, definition)


def test_the_fields_checked_here_are_every_integer_of_the_schema() -> None:
    assert set(integer_properties(load_schema())) == set(INTEGER_FIELDS)


def test_whole_number_floats_in_integer_fields_load_as_ints(tmp_path: Path) -> None:
    settings = [written for written, _, _ in INTEGER_FIELDS.values() if written]
    connection = "    data_transfer_accepted: true\n"
    text = replaced(connection, connection + f"    {settings[0]}\n")
    text = replaced(
        "    owner: marko\n",
        "    owner: marko\n" + "".join(f"    {line}\n" for line in settings[1:]),
        text=text,
    )
    text += "daemon:\n  guards: {min_members: 2.0}\n"

    result = load_text(tmp_path, text)

    assert result.config is not None, result.diagnostics
    for _, read, expected in INTEGER_FIELDS.values():
        value = read(result.config)
        assert type(value) is int and value == expected
    daemon_minimum = result.config.daemon.guards.min_members
    assert type(daemon_minimum) is int and daemon_minimum == 2


def test_an_every_written_as_a_whole_number_float_is_shown_as_whole_seconds(
    tmp_path: Path,
) -> None:
    text = replaced("    owner: marko\n", "    owner: marko\n    schedule: {every: 1e3}\n")

    result = load_text(tmp_path, text)

    assert result.config is not None, result.diagnostics
    schedule = result.config.exports["vip"].schedule
    assert schedule is not None
    assert (schedule.every_seconds, schedule.every_text) == (1000, "1000s")


def test_a_run_with_requests_per_minute_written_4e2_succeeds(
    tmp_path: Path, start_emulator: Callable[..., Emulator]
) -> None:
    emulator = start_emulator(api_keys=("test-key",), clock=ScaledClock(60.0))
    database = tmp_path / "crm.sqlite"
    write_segment(database, people(120))
    path = write_config(
        tmp_path, base_url=emulator.base_url, database=database, state_dir=tmp_path / "state"
    )
    text = path.read_text(encoding="utf-8")
    path.write_text(
        replaced("requests_per_minute: 400\n", "requests_per_minute: 4e2\n", text=text),
        encoding="utf-8",
    )

    done = omnisync("export", "run", "members", "--config", str(path), "--format", "json")

    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"
    assert len(emulator.contacts()) == 120
