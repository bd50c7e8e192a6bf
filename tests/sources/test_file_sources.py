"""CSV and JSONL segment sources: options, Unicode, and every way they fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omnisync.config.model import CsvOptions
from omnisync.sources import CsvReader, JsonlReader, open_segment
from omnisync.sources.errors import SourceError
from omnisync.sources.files import CSV_FIELD_LIMIT
from omnisync.sources.sqlite import open_readonly
from tests.staging.configs import make_config


def csv_reader(path: Path, *, encoding: str = "utf-8", delimiter: str = ",") -> CsvReader:
    return CsvReader(path, encoding=encoding, delimiter=delimiter, segment="vip", source="cdp")


def jsonl_reader(path: Path) -> JsonlReader:
    return JsonlReader(path, segment="vip", source="cdp")


# -- CSV ---------------------------------------------------------------------------------


def test_csv_rows_follow_the_header_and_keep_unicode(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "email,first_name,city\n"
        "olena@example.com,Олена,Київ\n"
        '"zoe@example.com","Zoë ""Z"" 🎉","Bordeaux, France"\n'
        "\n"
        "short@example.com\n",
        encoding="utf-8",
    )
    assert list(csv_reader(path).rows(["city", "email"])) == [
        ("Київ", "olena@example.com"),
        ("Bordeaux, France", "zoe@example.com"),
        (None, "short@example.com"),
    ]


def test_csv_fields_larger_than_the_csv_modules_default_limit_are_read(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    note = "x" * 300_000  # a long note nobody maps: the file is valid CSV
    path.write_text(f'email,note\nolena@example.com,"{note}"\n', encoding="utf-8")
    assert list(csv_reader(path).rows(["email", "note"])) == [("olena@example.com", note)]


def test_a_stray_quote_fails_at_the_field_limit_not_the_end_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    line = "olena@example.com,note\n"
    with path.open("w", encoding="utf-8") as handle:
        handle.write('email,note\nzoe@example.com,"unclosed\n')
        handle.write(line * (CSV_FIELD_LIMIT // len(line) + 1_000))
    with pytest.raises(SourceError, match="field larger than field limit"):
        list(csv_reader(path).rows(["email"]))


def test_csv_delimiter_and_encoding_options(tmp_path: Path) -> None:
    path = tmp_path / "legacy.csv"
    path.write_bytes("email;first_name\njose@example.es;José\n".encode("cp1252"))
    rows = list(csv_reader(path, encoding="cp1252", delimiter=";").rows(["email", "first_name"]))
    assert rows == [("jose@example.es", "José")]


def test_csv_wrong_encoding_names_the_line_and_the_option(tmp_path: Path) -> None:
    path = tmp_path / "legacy.csv"
    path.write_bytes(b"email,first_name\nok@example.com,Ok\njose@example.es,Jos\xe9\n")
    with pytest.raises(SourceError) as caught:
        list(csv_reader(path).rows(["email"]))
    assert "cannot decode as utf-8" in caught.value.cause
    assert "csv.encoding" in caught.value.cause
    assert "line 3" in caught.value.cause


def test_csv_unknown_encoding(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("email\n")
    with pytest.raises(SourceError, match="unknown encoding 'klingon'"):
        list(csv_reader(path, encoding="klingon").rows(["email"]))


@pytest.mark.parametrize("encoding", ["base64", "hex", "rot13", "zlib", "uu"])
def test_csv_codec_that_is_not_a_text_encoding(tmp_path: Path, encoding: str) -> None:
    # Validation refuses these; a config built by hand still gets an error, not a traceback.
    path = tmp_path / "a.csv"
    path.write_text("email\n")
    with pytest.raises(SourceError) as caught:
        list(csv_reader(path, encoding=encoding).rows(["email"]))
    assert caught.value.cause == (
        f"encoding '{encoding}' in the csv options is not a text encoding;"
        " set the source's csv.encoding"
    )


def test_csv_codec_that_refuses_the_whole_stream(tmp_path: Path) -> None:
    # UTF-16 without a byte order mark, or bytes punycode cannot read: the codec raises a
    # plain UnicodeError, which has no position to name a line by.
    path = tmp_path / "no-bom.csv"
    path.write_bytes("email\nolena@example.com\n".encode("utf-16-le"))
    with pytest.raises(SourceError) as caught:
        list(csv_reader(path, encoding="utf-16").rows(["email"]))
    assert caught.value.cause == (
        "cannot decode as utf-16 (UTF-16 stream does not start with BOM);"
        " set the source's csv.encoding"
    )
    path.write_text("email\nolena@example.com\n", encoding="ascii")
    with pytest.raises(SourceError) as caught:
        list(csv_reader(path, encoding="punycode").rows(["email"]))
    assert caught.value.cause.startswith("cannot decode as punycode (")


def test_csv_utf16_with_a_byte_order_mark_and_a_bad_unit_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    good = "email\nolena@example.com\n".encode("utf-16")
    path.write_bytes(good + "x@example.com\n".encode("utf-16-le") + b"\x00\xdc\n\x00")
    with pytest.raises(SourceError) as caught:
        list(csv_reader(path, encoding="utf-16").rows(["email"]))
    assert caught.value.cause.startswith("line 4: cannot decode as utf-16 (")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be", "utf-32-le"])
@pytest.mark.parametrize("header", ["email,first_name", '"email","first_name"'])
def test_csv_byte_order_mark_is_not_part_of_the_first_column(
    tmp_path: Path, encoding: str, header: str
) -> None:
    # Excel's "Unicode text" is UTF-16LE with a byte order mark; a user names the codec.
    # Exporters that quote every field write the mark before the first quote.
    path = tmp_path / "excel.csv"
    path.write_bytes(f"\ufeff{header}\r\nolena@example.com,Олена\r\n".encode(encoding))
    reader = csv_reader(path, encoding=encoding)
    assert list(reader.rows(["email"])) == [("olena@example.com",)]


def test_csv_missing_column_lists_the_header(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("Email,name\nx@example.com,X\n")
    with pytest.raises(SourceError) as caught:
        list(csv_reader(path).rows(["email", "name"]))
    assert caught.value.cause == "missing column 'email' (the segment has: Email, name)"


def test_a_csv_without_its_header_line_never_quotes_the_first_row(tmp_path: Path) -> None:
    # Its first row is taken as the header: listing those "column names" prints a customer.
    path = tmp_path / "a.csv"
    path.write_text("olena.kovalenko@example.com,Olena,Kyiv\nbob@example.com,Bob,Paris\n")
    with pytest.raises(SourceError) as caught:
        list(csv_reader(path).rows(["email", "first"]))
    assert caught.value.cause.startswith("missing columns 'email', 'first' (")
    assert "does the file have a header line?" in caught.value.cause
    assert "olena" not in caught.value.cause.casefold() and "Kyiv" not in caught.value.cause


def test_csv_malformed_quoting_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text('email,name\nx@example.com,"X\ny@example.com,"Y"Z\n')
    with pytest.raises(SourceError, match=r"line \d+: malformed CSV"):
        list(csv_reader(path).rows(["email"]))


def test_csv_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"file not found: .*gone\.csv"):
        list(csv_reader(tmp_path / "gone.csv").rows(["email"]))
    with pytest.raises(SourceError, match="is a directory"):
        list(csv_reader(tmp_path).rows(["email"]))


def test_a_pipe_as_a_source_path_fails_at_once_instead_of_waiting_for_a_writer(
    tmp_path: Path,
) -> None:
    """Opening a FIFO for reading blocks until something writes to it: a run, a plan or
    a daemon tick would hang for ever, holding the export's run lock."""
    pipe = tmp_path / "segment.pipe"
    os.mkfifo(pipe)
    for reader in (csv_reader(pipe), jsonl_reader(pipe)):
        with pytest.raises(SourceError, match=f"path is not a regular file: {pipe}"):
            list(reader.rows(["email"]))
    with pytest.raises(SourceError, match="database path is not a regular file"):
        open_readonly(pipe, segment="s", source="crm")


def test_csv_empty_file_is_an_error_but_a_header_alone_is_an_empty_segment(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(SourceError, match="the file is empty: no header line"):
        list(csv_reader(empty).rows(["email"]))
    header_only = tmp_path / "header.csv"
    header_only.write_text("email,name\n")
    assert list(csv_reader(header_only).rows(["email"])) == []


# -- JSONL -------------------------------------------------------------------------------


def test_jsonl_objects_become_storable_values(tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    path.write_text(
        '{"email": "olena@example.com", "first_name": "Олена", "vip": true, "ltv": 10.5}\n'
        "\n"
        '{"email": "zoe@example.com", "tags": ["a", "é"], "vip": false, '
        '"ltv": 12345678901234567890123}\n'
        '{"first_name": "No Mail 🎉"}\n',
        encoding="utf-8",
    )
    rows = list(jsonl_reader(path).rows(["email", "first_name", "vip", "ltv", "tags"]))
    assert rows == [
        ("olena@example.com", "Олена", "true", 10.5, None),
        ("zoe@example.com", None, "false", "12345678901234567890123", '["a","é"]'),
        (None, "No Mail 🎉", None, None, None),
    ]


def test_jsonl_malformed_line_is_named_by_number(tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    path.write_text('{"email": "a@example.com"}\n\n{"email": "b@example.com",\n')
    with pytest.raises(SourceError) as caught:
        list(jsonl_reader(path).rows(["email"]))
    assert caught.value.cause.startswith("line 3: malformed JSON")


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    path.write_text('{"email": "a@example.com"}\n["b@example.com"]\n')
    with pytest.raises(SourceError, match="line 2: expected a JSON object, got an array"):
        list(jsonl_reader(path).rows(["email"]))


def test_jsonl_undecodable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    path.write_bytes(b'{"email": "a@example.com"}\n{"email": "b\xff@example.com"}\n')
    with pytest.raises(SourceError, match="line 2: not UTF-8"):
        list(jsonl_reader(path).rows(["email"]))


def test_jsonl_lone_surrogate_in_a_wanted_value_names_the_line(tmp_path: Path) -> None:
    # Python's json accepts an escaped lone surrogate, but it is not Unicode text: SQLite
    # could not store it. A pair is one character; a key the segment does not read is moot.
    path = tmp_path / "people.jsonl"
    path.write_text(
        '{"email": "a@example.com", "first_name": "Zo\\ud83c\\udf89", "note": "\\ud800"}\n'
        '{"email": "b@example.com", "first_name": "B\\ud800b"}\n'
    )
    rows = jsonl_reader(path).rows(["email", "first_name"])
    assert next(rows) == ("a@example.com", "Zo🎉")
    with pytest.raises(SourceError) as caught:
        next(rows)
    assert caught.value.cause == (
        "line 2: the value of 'first_name' is not Unicode text"
        " (a lone surrogate \\ud800 from a \\u escape)"
    )
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"email": "a@example.com", "tags": ["ok", "\\udfff"]}\n')
    with pytest.raises(SourceError) as caught:
        list(jsonl_reader(nested).rows(["email", "tags"]))
    assert caught.value.cause.startswith("line 1: the value of 'tags' is not Unicode text")


def test_jsonl_empty_file_is_an_empty_segment_and_bom_is_allowed(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert list(jsonl_reader(empty).rows(["email"])) == []
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"email": "a@example.com"}\n')
    assert list(jsonl_reader(bom).rows(["email"])) == [("a@example.com",)]


def test_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="file not found"):
        list(jsonl_reader(tmp_path / "gone.jsonl").rows(["email"]))


def test_open_segment_for_files_passes_csv_options_and_refuses_a_query(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    config = make_config(
        source_path=path,
        kind="csv",
        state_dir=tmp_path,
        csv=CsvOptions(encoding="latin-1", delimiter="|"),
    )
    opened = open_segment(config, "vip")
    assert isinstance(opened, CsvReader)
    assert (opened.encoding, opened.delimiter) == ("latin-1", "|")
    assert isinstance(
        open_segment(make_config(source_path=path, kind="jsonl", state_dir=tmp_path), "vip"),
        JsonlReader,
    )


@pytest.mark.parametrize(
    ("kind", "whole", "appended"),
    [
        ("csv", "email\na@example.com\nb@example.com\n", "late.customer@example.co"),
        (
            "jsonl",
            '{"email": "a@example.com"}\n{"email": "b@example.com"}\n',
            '{"email": "late.customer@example.co"}',
        ),
    ],
)
def test_a_file_written_while_it_is_read_is_refused(
    tmp_path: Path, kind: str, whole: str, appended: str
) -> None:
    # The writer appends its row in two writes; the reader came between them and read
    # "…@example.co", a valid address of somebody else.
    path = tmp_path / f"people.{kind}"
    path.write_text(whole)
    rows = (csv_reader if kind == "csv" else jsonl_reader)(path).rows(["email"])
    assert next(rows) == ("a@example.com",)
    with path.open("a") as writer:
        writer.write(appended)
    with pytest.raises(SourceError) as caught:
        list(rows)
    assert caught.value.cause.endswith(
        "changed while it was read: write it elsewhere and rename it into place,"
        " so that a reader sees it whole"
    )
