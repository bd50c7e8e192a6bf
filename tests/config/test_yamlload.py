"""YAML parsing with positions, and the guards against what YAML lets through silently."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisync.config.model import Position
from omnisync.config.yamlload import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, parse_document
from tests.config.helpers import load_text, replaced


def parse(text: str | bytes) -> tuple[object, list[str]]:
    content = text.encode("utf-8") if isinstance(text, str) else text
    document = parse_document(content, file="c.yaml")
    return document.data, [str(diagnostic) for diagnostic in document.diagnostics]


def test_positions_are_those_of_keys_and_list_items() -> None:
    document = parse_document(b"a:\n  b: 1\n  list:\n    - x\n    - {y: 2}\n", file="c.yaml")

    assert document.data == {"a": {"b": 1, "list": ["x", {"y": 2}]}}
    assert document.positions[("a",)] == Position("c.yaml", 1, 1)
    assert document.positions[("a", "b")] == Position("c.yaml", 2, 3)
    assert document.positions[("a", "list", 0)] == Position("c.yaml", 4, 7)
    assert document.positions[("a", "list", 1, "y")] == Position("c.yaml", 5, 8)
    assert document.positions[()] == Position("c.yaml", 1, 1)


def test_duplicate_keys_are_errors_naming_both_places_and_the_first_value_is_kept() -> None:
    data, problems = parse("a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\na: 5\n")

    assert data == {"a": 1, "b": {"c": 2, "d": 3}}
    assert problems == [
        "c.yaml:5:3: b.c: duplicate key 'c': first at line 3, column 3, again at line 5, column 3",
        "c.yaml:6:1: a: duplicate key 'a': first at line 1, column 1, again at line 6, column 1",
    ]


def test_invalid_utf8_is_located_by_line_and_character_column() -> None:
    data, problems = parse("a: 1\nb: пé".encode() + b"\xff\n")

    assert data is None
    # "a: 1\n" is 5 bytes, "b: " 3, "п" and "é" 2 each: the bad byte is byte 12, character 6.
    assert problems == ["c.yaml:2:6: not valid UTF-8: byte 0xff at offset 12"]


def test_a_utf8_byte_order_mark_is_tolerated_and_does_not_shift_columns() -> None:
    document = parse_document(b"\xef\xbb\xbfa: 1\nb: 2\n", file="c.yaml")

    assert document.data == {"a": 1, "b": 2}
    assert document.diagnostics == ()
    assert document.positions[("a",)] == Position("c.yaml", 1, 1)


def test_utf16_is_refused_with_advice() -> None:
    assert parse("a: 1\n".encode("utf-16"))[1] == [
        "c.yaml:1:1: file is UTF-16 (byte-order mark); save it as UTF-8"
    ]


def test_empty_blank_and_comment_only_files() -> None:
    assert parse(b"")[1] == ["c.yaml:1:1: file is empty"]
    assert parse(b"\n  \n\t\n")[1] == ["c.yaml:1:1: file is empty"]
    assert parse(b"# only a comment\n")[1] == [
        "c.yaml:1:1: file has no YAML document, only comments"
    ]


def test_the_top_level_must_be_a_mapping() -> None:
    for text, kind in (("- a\n", "a list"), ("just text\n", "a string"), ("42\n", "an integer")):
        data, problems = parse(text)
        assert data is None
        assert problems == [
            "c.yaml:1:1: the top level must be a mapping of sections"
            f" (version, users, sources, ...), not {kind}"
        ]


def test_a_second_document_is_refused() -> None:
    assert parse("a: 1\n---\nb: 2\n")[1] == [
        "c.yaml:2:1: a config file holds one YAML document, but a second one starts here"
    ]


def test_syntax_errors_are_one_line_with_a_position() -> None:
    data, problems = parse("a:\n  b: 1\n c: 2\n")

    assert data is None
    assert len(problems) == 1
    assert problems[0].startswith("c.yaml:3:2: invalid YAML: ")
    assert "\n" not in problems[0]


def test_files_over_one_mebibyte_are_refused_before_parsing() -> None:
    content = b"a: '" + b"x" * MAX_FILE_BYTES + b"'\n"

    assert parse(content)[1] == ["c.yaml:1:1: file is larger than 1 MiB; refusing to read it"]


def test_alias_bomb_is_stopped_at_the_alias_that_expands_too_far() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for previous, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 10)}]")
    data, problems = parse("\n".join(lines) + "\n")

    assert data is None
    # The root, a, b, c and d hold 1 + 11 + 111 + 1,111 + 11,111 = 12,345 values; e's
    # list and its first seven *d bring 12,346 + 77,777; the 8th *d crosses 100,000.
    assert problems == [
        f"c.yaml:5:{8 + 7 * 4}: alias *d expands the document past {MAX_NODES} values"
        " (an alias bomb?); refusing to expand it"
    ]


def test_aliases_that_stay_small_are_expanded() -> None:
    data, problems = parse("base: &m {email: email}\nuse: *m\nlist: [*m, *m]\n")

    assert problems == []
    assert data == {
        "base": {"email": "email"},
        "use": {"email": "email"},
        "list": [{"email": "email"}] * 2,
    }


def test_a_recursive_alias_is_refused() -> None:
    assert parse("a: &x\n  b: *x\n")[1] == [
        "c.yaml:2:6: alias *x refers to a node that contains it"
    ]


def test_too_many_values_are_refused_while_composing() -> None:
    content = ("a: [" + "1," * (MAX_NODES + 1) + "1]\n").encode()

    problems = parse(content)[1]
    assert len(problems) == 1
    assert f"more than {MAX_NODES} values in one file" in problems[0]


def test_deep_nesting_is_refused_without_recursion_errors() -> None:
    problems = parse("a: " + "[" * 5000 + "]" * 5000 + "\n")[1]

    assert problems == [f"c.yaml:1:{4 + MAX_DEPTH - 1}: nested deeper than {MAX_DEPTH} levels"]


def test_merge_keys_merge_and_explicit_keys_win_wherever_written() -> None:
    text = "base: &b {x: 1, y: 2}\nother: &o {z: 3}\nd:\n  y: 5\n  <<: [*b, *o]\n"
    document = parse_document(text.encode(), file="c.yaml")

    assert document.diagnostics == ()
    assert document.data == {
        "base": {"x": 1, "y": 2},
        "other": {"z": 3},
        "d": {"x": 1, "y": 5, "z": 3},
    }
    assert document.positions[("d", "y")] == Position("c.yaml", 4, 3)


def test_merging_something_other_than_a_mapping_is_an_error() -> None:
    assert parse("s: &s text\nd:\n  <<: *s\n")[1] == [
        "c.yaml:3:7: d: '<<' needs a mapping or a list of mappings"
    ]


def test_tags_other_than_the_standard_ones_are_refused() -> None:
    data, problems = parse(
        "a: !!python/object/apply:os.system [ls]\nb: !custom x\nc: !!binary aGVsbG8=\n"
        "d: !!set {x}\ne: !!str 42\nf: !!int '7'\n"
    )

    # Refused tags are reported, and their content read as plain data, never constructed.
    assert data == {"a": ["ls"], "b": None, "c": None, "d": {"x": None}, "e": "42", "f": 7}
    assert problems == [
        "c.yaml:1:4: a: YAML tag '!!python/object/apply:os.system' is not allowed;"
        " use plain strings, numbers, booleans, lists and mappings",
        "c.yaml:2:4: b: YAML tag '!custom' is not allowed;"
        " use plain strings, numbers, booleans, lists and mappings",
        "c.yaml:3:4: c: YAML tag '!!binary' is not allowed;"
        " use plain strings, numbers, booleans, lists and mappings",
        "c.yaml:4:4: d: YAML tag '!!set' is not allowed;"
        " use plain strings, numbers, booleans, lists and mappings",
    ]


def test_a_bad_explicit_scalar_tag_is_an_error_not_a_crash() -> None:
    assert parse("a: !!int many\n")[1] == ["c.yaml:1:4: a: this value is not a valid !!int"]


def test_keys_must_be_scalars_and_text_keys_are_kept_as_written() -> None:
    data, problems = parse("'1': one\nyes: two\n? [a, b]\n: three\n1:30: four\n")

    assert data == {"1": "one", "yes": "two", "1:30": "four"}
    assert problems == ["c.yaml:3:3: a key must be a plain name, not a list or mapping"]


def test_a_plain_key_yaml_1_2_reads_as_a_number_true_false_or_null_is_refused() -> None:
    # check-jsonschema would see str() of the value ('True', 'None', '1000.0', '10', '31'):
    # a name that is not what was written. Quoted, each is the name it looks like.
    data, problems = parse(
        "users:\n  010: {}\n  true: {}\n  null: {}\n  1e3: {}\n  0x1f: {}\n"
        "  ~: {}\n  !!int 7: {}\n  yes: {}\n  '010': {}\n  \"true\": {}\n"
    )

    assert data == {"users": {"yes": {}, "010": {}, "true": {}}}
    assert problems == [
        f"c.yaml:{line}:3: users: a name written as a number or true/false/null: quote it ('{key}')"
        for line, key in ((2, "010"), (3, "true"), (4, "null"), (5, "1e3"), (6, "0x1f"))
    ] + [
        "c.yaml:7:3: users: a name written as a number or true/false/null: quote it ('~')",
        "c.yaml:8:3: users: a name written as a number or true/false/null: quote it ('7')",
    ]


def test_a_plain_equals_sign_is_refused_as_a_value_and_as_a_key() -> None:
    # YAML gives a plain `=` the tag !!value, which check-jsonschema (ruamel.yaml) cannot
    # build: the file would not parse there.
    data, problems = parse("a: =\nb: '='\nc: [=, x]\n=: d\n")

    assert data == {"a": None, "b": "=", "c": [None, "x"]}
    assert problems == [
        "c.yaml:1:4: a: a plain = is YAML's 'value' indicator, not text: quote it ('=')",
        "c.yaml:3:5: c.0: a plain = is YAML's 'value' indicator, not text: quote it ('=')",
        "c.yaml:4:1: a plain = is YAML's 'value' indicator, not text: quote it ('=')",
    ]


def test_scalars_follow_yaml_types_but_dates_stay_text() -> None:
    data, _ = parse("n: 12\nf: 1.5\nt: true\nz: null\nd: 2026-01-01\ns: '12'\n")

    assert data == {"n": 12, "f": 1.5, "t": True, "z": None, "d": "2026-01-01", "s": "12"}


#: Plain scalars and what they read as: YAML 1.2 as check-jsonschema (ruamel.yaml) reads it.
#: The comments say what YAML 1.1 (PyYAML's resolvers) read instead.
READINGS = (
    ("1:30", "1:30"),  # 90 (sexagesimal)
    ("1:30:00", "1:30:00"),  # 5400
    ("yes", "yes"),  # true
    ("No", "No"),  # false
    ("off", "off"),  # false
    ("On", "On"),  # true
    ("y", "y"),
    ("true", True),
    ("False", False),
    ("TRUE", True),
    ("tRUE", "tRUE"),
    ("010", 10),  # 8 (octal)
    ("0777", 777),  # 511
    ("08", 8),  # "08"
    ("+010", 10),  # 8
    ("0o10", 8),  # "0o10"
    ("-0o10", -8),  # "-0o10"
    ("0x1F", 31),
    ("0b101", 5),
    ("1_000", 1000),
    ("+12", 12),
    ("-0", 0),
    ("1e3", 1000.0),  # "1e3"
    ("1E+3", 1000.0),  # "1E+3"
    ("1.5e-3", 0.0015),
    ("1.", 1.0),
    (".5", 0.5),
    ("-.5", -0.5),  # "-.5"
    (".5e+3", 500.0),
    (".5e3", ".5e3"),  # text to ruamel.yaml too: its form wants a sign after the e
    ("+.inf", math.inf),
    ("-.INF", -math.inf),
    ("+.nan", "+.nan"),
    ("~", None),
    ("null", None),
    ("NULL", None),
    ("0o9", "0o9"),
    ("0X1F", "0X1F"),
    ("1,000", "1,000"),
    ("2026-01-01", "2026-01-01"),
)


@pytest.mark.parametrize(("written", "read"), READINGS)
def test_plain_scalars_are_read_as_yaml_1_2_reads_them(written: str, read: object) -> None:
    data, problems = parse(f"a: {written}\n")

    assert problems == []
    assert isinstance(data, dict)
    assert data["a"] == read
    assert type(data["a"]) is type(read)


def test_nan_and_an_empty_value_are_yaml_1_2_too() -> None:
    data, problems = parse("a: .nan\nb: .NaN\nc:\n")

    assert problems == []
    assert isinstance(data, dict)
    assert math.isnan(data["a"]) and math.isnan(data["b"])
    assert data["c"] is None


def _exactly(value: object) -> dict[str, object]:
    """A JSON Schema that only ``value`` (and, JSON having no difference, an integer equal
    to a float) passes. JSON has no infinity: one is beyond the largest finite number."""
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    if isinstance(value, float) and math.isinf(value):
        bound = "exclusiveMinimum" if value > 0 else "exclusiveMaximum"
        return {"type": "number", bound: math.copysign(sys.float_info.max, value)}
    return {"type": kinds[type(value)], "const": value}


def test_plain_scalars_read_as_check_jsonschema_reads_them(tmp_path: Path) -> None:
    # One run of the real check-jsonschema: a schema requires each key to be the value
    # omnisync read, so it passes only if check-jsonschema reads every one the same.
    names = [f"k{index}" for index in range(len(READINGS))]
    document = tmp_path / "scalars.yaml"
    document.write_text(
        "".join(f"{name}: {written}\n" for name, (written, _) in zip(names, READINGS, strict=True))
    )
    data, problems = parse(document.read_bytes())
    assert problems == [] and isinstance(data, dict)
    schema = tmp_path / "scalars.schema.json"
    schema.write_text(
        json.dumps(
            {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "required": names,
                "properties": {name: _exactly(data[name]) for name in names},
            },
            allow_nan=False,
        )
    )
    checked = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema), str(document)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_explicit_scalar_tags_read_their_value_as_yaml_1_2_does() -> None:
    data, problems = parse(
        "a: !!int 010\nb: !!float 1\nc: !!bool true\nd: !!bool yes\ne: !!int 1:30\n"
    )

    assert data == {"a": 10, "b": 1.0, "c": True, "d": None, "e": None}
    assert problems == [
        "c.yaml:4:4: d: this value is not a valid !!bool: write true or false",
        "c.yaml:5:4: e: this value is not a valid !!int",
    ]


def test_a_yaml_version_other_than_1_2_is_refused_at_its_directive() -> None:
    # check-jsonschema reads a %YAML 1.1 document by YAML 1.1 (yes is true, 010 is 8):
    # omnisync reads one way only, and says so, rather than read it differently.
    for version in ("1.1", "1.3"):
        data, problems = parse(f"# config\n%YAML {version}\n---\na: yes\n")
        assert data is None
        assert problems == [
            f"c.yaml:2:1: this file declares %YAML {version}; omnisync reads config files"
            " as YAML 1.2 (yes and on are text, 010 is ten): remove the directive"
        ]

    assert parse("%YAML 1.2\n---\na: yes\n") == ({"a": "yes"}, [])


def test_numbers_yaml_1_1_misread_configure_what_they_say(tmp_path: Path) -> None:
    text = replaced(
        "    owner: marko\n",
        "    owner: marko\n    max_profiles: 010\n    schedule: {every: 1e3}\n",
    )

    result = load_text(tmp_path, text)

    assert result.config is not None, result.diagnostics
    export = result.config.exports["vip"]
    assert export.max_profiles == 10
    assert export.schedule is not None and export.schedule.every_seconds == 1000


def test_characters_yaml_forbids_are_located() -> None:
    assert parse(b"a: 1\nb: x\x07y\n")[1] == ["c.yaml:2:5: character U+0007 is not allowed in YAML"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(content: bytes) -> None:
    document = parse_document(content, file="c.yaml")
    assert document.data is not None or document.diagnostics


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab:-[]{}&*!<>,'\"\n #|?%@`\t", max_size=200))
def test_arbitrary_yamlish_text_never_raises(text: str) -> None:
    document = parse_document(text.encode("utf-8"), file="c.yaml")
    assert document.data is not None or document.diagnostics
