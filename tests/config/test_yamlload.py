"""YAML parsing with positions, and the guards against what YAML lets through silently."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from omnisync.config.model import Position
from omnisync.config.yamlload import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, parse_document


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


def test_keys_must_be_scalars_and_are_kept_as_written() -> None:
    data, problems = parse("1: one\nyes: two\n? [a, b]\n: three\n")

    assert data == {"1": "one", "yes": "two"}
    assert problems == ["c.yaml:3:3: a key must be a plain name, not a list or mapping"]


def test_scalars_follow_yaml_types_but_dates_stay_text() -> None:
    data, _ = parse("n: 12\nf: 1.5\nt: true\nz: null\nd: 2026-01-01\ns: '12'\n")

    assert data == {"n": 12, "f": 1.5, "t": True, "z": None, "d": "2026-01-01", "s": "12"}


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
