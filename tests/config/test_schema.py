"""The JSON Schema itself, and how its errors are explained."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from omnisync.config.build import parse_duration
from omnisync.config.model import (
    Connection,
    Consent,
    CsvOptions,
    DaemonSettings,
    Export,
    FieldMapping,
    Guards,
    RateLimit,
    Schedule,
    Segment,
    StateSettings,
    User,
)
from omnisync.config.schema import load_schema, schema_text, validate_document
from omnisync.config.yamlload import parse_document
from tests.config.helpers import BASE, REPOSITORY, replaced


def schema_objects(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from schema_objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from schema_objects(item, f"{where}/{index}")


def check(text: str) -> list[str]:
    document = parse_document(text.encode(), file="c.yaml")
    assert document.data is not None, document.diagnostics
    found = validate_document(document.data, positions=document.positions)
    return [str(diagnostic) for diagnostic in sorted(diagnostic for _, diagnostic in found)]


def test_the_schema_is_valid_draft_2020_12_and_is_the_repository_file() -> None:
    schema = load_schema()

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert json.loads(schema_text()) == json.loads(
        (REPOSITORY / "schemas" / "omnisync.schema.json").read_text(encoding="utf-8")
    )


def test_every_object_forbids_unknown_properties_and_every_map_checks_its_names() -> None:
    for where, node in schema_objects(load_schema()):
        if "properties" in node and where != "#/$defs":
            assert node.get("additionalProperties") is False, where
        if isinstance(node.get("additionalProperties"), dict):
            assert "propertyNames" in node, where


def test_every_property_has_a_description() -> None:
    schema = load_schema()
    for where, node in schema_objects(schema):
        if where.endswith("/$defs"):
            continue
        for key, subschema in node.get("properties", {}).items():
            if where.endswith("/properties"):
                continue  # a property literally called "properties" is not a schema here
            described = subschema
            reference = subschema.get("$ref", "")
            if "description" not in subschema and reference.startswith("#/$defs/"):
                described = schema["$defs"][reference.removeprefix("#/$defs/")]
            assert described.get("description"), f"{where}/properties/{key}"


def test_the_example_config_passes_the_schema() -> None:
    text = (REPOSITORY / "config.example.yaml").read_text(encoding="utf-8")
    assert check(text) == []


def test_unknown_properties_are_reported_at_the_key_with_the_closest_name() -> None:
    text = replaced("    owner: marko\n", "    ownr: marko\n    sement: x\n    colour: red\n")
    text = replaced("version: 1\n", "version: 1\nuser: {}\n", text=text)

    assert check(text) == [
        "c.yaml:2:1: user: unknown property 'user' (did you mean 'users'?)",
        "c.yaml:22:3: exports.vip: missing required property 'owner'",
        "c.yaml:25:5: exports.vip.ownr: unknown property 'ownr' (did you mean 'owner'?)",
        "c.yaml:26:5: exports.vip.sement: unknown property 'sement' (did you mean 'segment'?)",
        "c.yaml:27:5: exports.vip.colour: unknown property 'colour'",
    ]


def test_a_source_is_explained_by_its_kind_not_by_every_alternative() -> None:
    text = replaced("    path: cdp.sqlite\n", "    path: cdp.sqlite\n    delimiter: ';'\n")
    assert check(text) == [
        "c.yaml:11:5: sources.cdp.delimiter: unknown property 'delimiter' for kind sqlite"
    ]

    text = replaced("    kind: sqlite\n", "    kind: sqllite\n")
    assert check(text) == [
        "c.yaml:9:5: sources.cdp.kind: unknown kind 'sqllite'; expected one of:"
        " sqlite, csv, jsonl, postgres (did you mean 'sqlite'?)"
    ]

    text = replaced("    kind: sqlite\n", "")
    assert check(text) == [
        "c.yaml:8:3: sources.cdp: missing required property 'kind'"
        " (one of: sqlite, csv, jsonl, postgres)"
    ]

    text = replaced("    kind: sqlite\n    path: cdp.sqlite\n", "    kind: postgres\n")
    assert check(text) == ["c.yaml:8:3: sources.cdp: missing required property 'dsn'"]


def test_an_export_schedule_is_explained_by_the_type_written() -> None:
    assert check(BASE + "    schedule: 15\n") == [
        "c.yaml:27:5: exports.vip.schedule: expected a string or a mapping, got an integer"
    ]
    assert check(BASE + "    schedule: Every Hour\n") == [
        "c.yaml:27:5: exports.vip.schedule: names are 1 to 63 lowercase letters, digits,"
        " '-' and '_', starting with a letter or digit"
    ]
    assert check(BASE + "    schedule: {every: 1h, jitter: 5m}\n") == [
        "c.yaml:27:27: exports.vip.schedule.jitter: unknown property 'jitter'"
    ]


def test_types_enums_and_limits_have_plain_messages() -> None:
    text = replaced("    role: admin\n", "    role: root\n")
    text = replaced(
        "    data_transfer_accepted: true\n", "    data_transfer_accepted: 'sure'\n", text=text
    )
    text = replaced(
        "    allowed_users: [marko]\n", "    allowed_users: [marko, marko]\n", text=text
    )

    assert check(text) == [
        "c.yaml:4:5: users.olena.role: 'root' is not one of: admin, contributor",
        "c.yaml:18:5: connections.main.allowed_users: lists 'marko' more than once",
        "c.yaml:19:5: connections.main.data_transfer_accepted:"
        " expected true or false, got a string",
    ]


def test_yaml_1_1_forms_read_as_text_are_refused_with_what_is_accepted() -> None:
    text = replaced(_ACCEPTED, "    data_transfer_accepted: yes\n")
    text = replaced(_OWNER, _OWNER + "    enabled: off\n    schedule: {every: 1:30}\n", text=text)

    assert check(text) == [
        "c.yaml:19:5: connections.main.data_transfer_accepted:"
        " expected true or false, got the text 'yes' (YAML 1.2 has no yes/no/on/off booleans)",
        "c.yaml:25:5: exports.vip.enabled: expected true or false, got the text 'off'"
        " (YAML 1.2 has no yes/no/on/off booleans)",
        "c.yaml:26:16: exports.vip.schedule.every: a duration such as 15m, 1h, 30s or 500ms,"
        " or a number of seconds greater than 0",
    ]


SECRET_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/+=.:@"
SECRET_PLACES = (
    ("    api_key: {env: OMNISEND_API_KEY}\n", "    api_key: {secret}\n"),
    ("    api_key: {env: OMNISEND_API_KEY}\n", "    api_key: {{env: {secret}}}\n"),
    ("    api_key: {env: OMNISEND_API_KEY}\n", "    api_key: {{credential: {secret}}}\n"),
    ("    api_key: {env: OMNISEND_API_KEY}\n", "    api_key: [{secret}]\n"),
    ("    api_key: {env: OMNISEND_API_KEY}\n", "    api_key: {{env: X, value: {secret}}}\n"),
    ("    path: cdp.sqlite\n", "    path: cdp.sqlite\n    dsn: {secret}\n"),
)


@settings(max_examples=60, deadline=None)
@given(
    # Always with a "+" or "/": characters no reference name may hold, so it is never valid.
    secret=st.text(alphabet=SECRET_ALPHABET, min_size=12, max_size=40).map(
        lambda text: text + "+/"
    ),
    place=st.sampled_from(SECRET_PLACES),
)
def test_a_secret_written_where_a_reference_belongs_is_never_echoed(
    secret: str, place: tuple[str, str]
) -> None:
    old, new = place
    text = replaced(old, new.format(secret=json.dumps(secret)))
    problems = check(text)

    assert problems
    assert not any(secret in problem for problem in problems)


def test_the_plaintext_hint_names_a_fitting_variable() -> None:
    text = replaced("    api_key: {env: OMNISEND_API_KEY}\n", "    api_key: hunter2hunter2\n")

    assert check(text) == [
        "c.yaml:17:5: connections.main.api_key: must be a secret reference, never the secret"
        " itself: use {env: OMNISEND_API_KEY}, {file: /path} or {credential: NAME}"
    ]


def test_schema_file_is_shipped_in_the_wheel_by_pyproject() -> None:
    pyproject = (REPOSITORY / "pyproject.toml").read_text(encoding="utf-8")
    assert '"schemas/omnisync.schema.json" = "omnisync/schemas/omnisync.schema.json"' in pyproject
    assert Path(REPOSITORY / "schemas" / "omnisync.schema.json").is_file()


def test_the_defaults_the_schema_documents_are_the_models() -> None:
    # build.py leaves an unset key to the model's default; the reference shows the schema's.
    definitions = load_schema()["$defs"]
    expected = {
        ("csv_source", "encoding"): CsvOptions().encoding,
        ("csv_source", "delimiter"): CsvOptions().delimiter,
        ("connection", "kind"): Connection.kind,
        ("connection", "data_transfer_accepted"): Connection.data_transfer_accepted,
        ("connection", "base_url"): Connection.base_url,
        ("rate_limit", "requests_per_minute"): RateLimit().requests_per_minute,
        ("rate_limit", "tags_per_minute"): RateLimit().tags_per_minute,
        ("schedule", "timezone"): Schedule(name=None).timezone,
        ("consent", "source"): Consent.source,
        ("export", "on_leave"): Export.on_leave,
        ("export", "send_welcome_message"): Export.send_welcome_message,
        ("export", "enabled"): Export.enabled,
        ("daemon", "log_format"): DaemonSettings.log_format,
        ("daemon", "reload_debounce"): DaemonSettings.reload_debounce_seconds,
        ("control", "listen"): DaemonSettings.control_listen,
        ("state", "kind"): StateSettings().kind,
        ("state", "lease"): StateSettings().lease_seconds,
        ("guards", "max_removed"): Guards().max_removed,
        ("guards", "allow_empty"): Guards().allow_empty,
        ("guards", "min_members"): Guards().min_members,
    }
    documented = {
        (name, key): subschema["default"]
        for name, definition in definitions.items()
        for key, subschema in definition.get("properties", {}).items()
        if "default" in subschema and not isinstance(subschema["default"], dict | list)
    }
    assert set(documented) == set(expected)
    for (name, key), written in documented.items():
        value = written
        if key in ("reload_debounce", "lease"):
            value = parse_duration(written)
        elif key == "max_removed":
            value = float(written.removesuffix("%")) / 100
        assert value == expected[name, key], (name, key)


_OWNER = "    owner: marko\n"
_EVERY = _OWNER + "    schedule:\n      every: {block}\n        2s\n"
_EXPORT = _OWNER + "    {setting}\n"
_ACCEPTED = "    data_transfer_accepted: true\n"
_REPLICA = "daemon:\n  replica_id: {id}\nexports:\n"
_CSV = "sources:\n  file:\n    kind: csv\n    path: x.csv\n    delimiter: {delimiter}\n"
_USER = "  marko:\n"
_CONNECTION = "    data_transfer_accepted: true\n"
_MAPPING = "      email: email\n"

#: Changes to BASE (``("", "")``: none) and whether the config is valid.
AGREED = [
    (("", ""), True),
    ((_OWNER, _EVERY.format(block="|")), False),  # "2s" and a final newline
    ((_OWNER, _EVERY.format(block="|-")), True),  # "2s"
    (("exports:\n", "daemon:\n  guards:\n    max_removed: |\n      50%\nexports:\n"), False),
    (("sources:\n", _CSV.format(delimiter="';'")), True),
    # Whitespace in one dialect only: ECMA's U+FEFF, Python's U+001C and U+0085.
    (("exports:\n", _REPLICA.format(id="omnisync-0")), True),
    (("exports:\n", _REPLICA.format(id='"omnisync\\ufeff0"')), False),
    (("exports:\n", _REPLICA.format(id='"omnisync\\x1c0"')), False),
    (("exports:\n", _REPLICA.format(id='"omnisync\\x850"')), False),
    (("sources:\n", _CSV.format(delimiter="'\"'")), False),
    (("sources:\n", _CSV.format(delimiter='"\\n"')), False),
    # Plain scalars that YAML 1.1 reads otherwise: both read them as YAML 1.2 does.
    ((_OWNER, _EXPORT.format(setting="schedule: {every: 1:30}")), False),  # not 90 seconds
    ((_OWNER, _EXPORT.format(setting="schedule: {every: 90}")), True),
    ((_OWNER, _EXPORT.format(setting="schedule: {every: 1e3}")), True),
    ((_OWNER, _EXPORT.format(setting="schedule: {every: .5e3}")), False),  # text to both
    ((_ACCEPTED, "    data_transfer_accepted: yes\n"), False),
    ((_ACCEPTED, "    data_transfer_accepted: TRUE\n"), True),
    ((_OWNER, _EXPORT.format(setting="enabled: off")), False),
    ((_OWNER, _EXPORT.format(setting="send_welcome_message: No")), False),
    ((_OWNER, _EXPORT.format(setting="max_profiles: 010")), True),
    ((_OWNER, _EXPORT.format(setting="max_profiles: 0o10")), True),
    ((_OWNER, _EXPORT.format(setting="max_profiles: 1_000")), True),
    ((_OWNER, _EXPORT.format(setting="max_profiles: 0x10")), True),
    # An integer written as a whole-number float: JSON Schema's integer admits it.
    ((_OWNER, _EXPORT.format(setting="max_profiles: 1e3")), True),
    ((_OWNER, _EXPORT.format(setting="max_profiles: 1000.0")), True),
    ((_OWNER, _EXPORT.format(setting="max_profiles: 1.5e3")), True),
    ((_OWNER, _EXPORT.format(setting="max_profiles: 1.5")), False),
    ((_CONNECTION, _CONNECTION + "    rate_limit: {requests_per_minute: 4e2}\n"), True),
    # A plain key that YAML 1.2 reads as true/false/null or a float: check-jsonschema
    # names it str() of that value ('True', 'None', '1000.0'), which no name pattern
    # admits; omnisync refuses the key itself (test_yamlload.py).
    ((_USER, "  true:\n"), False),
    ((_USER, "  False:\n"), False),
    ((_USER, "  null:\n"), False),
    ((_USER, "  ~:\n"), False),
    ((_USER, "  1e3:\n"), False),
    ((_USER, "  1.5:\n"), False),
    ((_USER, "  'true':\n"), True),
    ((_USER, "  '010':\n"), True),
    ((_MAPPING, _MAPPING + "      custom_properties: {1e3: tier}\n"), False),
    # A plain `=` is YAML's !!value, which check-jsonschema cannot even parse.
    ((_CONNECTION, _CONNECTION + "    display_name: =\n"), False),
    ((_CONNECTION, _CONNECTION + "    display_name: '='\n"), True),
]

#: Changes to BASE that check-jsonschema passes and omnisync refuses, and the key refused.
RENAMED = [
    ((_USER, "  010:\n"), "010"),  # check-jsonschema reads the user '10'
    ((_USER, "  0x1f:\n"), "0x1f"),  # '31'
    ((_USER, "  .inf:\n"), ".inf"),  # 'inf'
    ((_MAPPING, _MAPPING + "      custom_properties: {true: tier}\n"), "true"),  # 'True'
    ((_MAPPING, _MAPPING + "      custom_properties: {null: tier}\n"), "null"),  # 'None'
]


def changed(change: tuple[str, str]) -> str:
    return replaced(*change) if change[0] else BASE


@pytest.fixture(scope="module")
def check_jsonschema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bool, str]]:
    """The real check-jsonschema CLI, as users run it in CI, on the config of every case of
    AGREED and RENAMED: each config text mapped to (whether check-jsonschema passed its
    file, what it said of it). One process checks them all (each start costs a quarter of
    a second of CPU); its JSON report names each file as passed or with its errors."""
    directory = tmp_path_factory.mktemp("check-jsonschema")
    texts = sorted({changed(change) for change, _ in [*AGREED, *RENAMED]})
    files: dict[str, str] = {}
    for number, text in enumerate(texts):
        config = directory / f"case-{number:02}" / "omnisync.yaml"
        config.parent.mkdir()
        config.write_text(text, encoding="utf-8")
        files[str(config)] = text
    checked = subprocess.run(
        [
            *(sys.executable, "-m", "check_jsonschema", "--verbose", "--output-format", "json"),
            *("--schemafile", str(REPOSITORY / "schemas" / "omnisync.schema.json"), *files),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode in (0, 1), checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    # All passed: "checked_paths"; otherwise "successes" (--verbose lists them).
    passed = set(report["checked_paths"] if report["status"] == "ok" else report["successes"])
    said: dict[str, list[str]] = {name: [] for name in files}
    for error in report["errors"]:
        said[error["filename"]].append(f"{error['path']}: {error['message']}")
    for error in report.get("parse_errors", []):
        said[error["filename"]].append(error["message"])
    assert passed <= set(files), report
    verdicts = {}
    for name, text in files.items():
        # Every file is either passed or refused with a reason, never both or neither.
        assert (name in passed) != bool(said[name]), (name, report)
        verdicts[text] = (name in passed, "\n".join(said[name]))
    return verdicts


@pytest.mark.parametrize(("change", "valid"), AGREED)
def test_omnisync_and_check_jsonschema_agree_on_what_the_schema_admits(
    check_jsonschema: dict[str, tuple[bool, str]], change: tuple[str, str], valid: bool
) -> None:
    # Users validate their config in CI with check-jsonschema (ECMA-262 patterns) as well
    # as `omnisync validate`: one may not pass what the other refuses.
    text = changed(change)
    passed, said = check_jsonschema[text]
    assert passed is valid, said
    document = parse_document(text.encode(), file="omnisync.yaml")
    assert document.data is not None
    problems = [
        *document.diagnostics,
        *(found for _, found in validate_document(document.data, positions=document.positions)),
    ]
    assert (problems == []) is valid, problems


@pytest.mark.parametrize(("change", "key"), RENAMED)
def test_where_they_differ_omnisync_refuses_a_key_check_jsonschema_renames(
    check_jsonschema: dict[str, tuple[bool, str]], change: tuple[str, str], key: str
) -> None:
    # The one known difference, and in the safe direction: check-jsonschema validates
    # str() of a plain key's YAML value, and where that text fits the pattern (digits fit a
    # name, 'True' and 'None' a custom property name) it passes a file whose names are
    # not the ones written; omnisync refuses the key and says to quote it.
    text = changed(change)
    passed, said = check_jsonschema[text]
    assert passed, said
    document = parse_document(text.encode(), file="c.yaml")
    assert [diagnostic.message for diagnostic in document.diagnostics] == [
        f"a name written as a number or true/false/null: quote it ('{key}')"
    ]


def test_every_property_of_a_model_built_from_its_body_is_a_field_of_the_model() -> None:
    # build.py builds these models from the whole validated body: a property the schema
    # gains without a field would end loading in a TypeError (an internal error).
    definitions = load_schema()["$defs"]
    models = {
        "user": User,
        "segment": Segment,
        "connection": Connection,
        "export": Export,
        "mapping": FieldMapping,
        "consent": Consent,
    }
    for name, model in models.items():
        fields = {field.name for field in dataclasses.fields(model)}
        properties = set(definitions[name]["properties"])
        assert properties <= fields, (name, sorted(properties - fields))
