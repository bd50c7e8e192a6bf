"""Diagnostics: their text, order and renderings."""

from __future__ import annotations

import json

import pytest

from omnisync.config.diagnostics import (
    ConfigInvalid,
    Diagnostic,
    did_you_mean,
    render_github,
    render_json,
    render_text,
    sort_diagnostics,
    summarize,
)


def test_text_form() -> None:
    assert str(Diagnostic("a.yaml", 14, 7, "exports.vip.mapping.email", "missing")) == (
        "a.yaml:14:7: exports.vip.mapping.email: missing"
    )
    assert str(Diagnostic("a.yaml", 1, 1, "", "file is empty")) == "a.yaml:1:1: file is empty"


def test_sorted_by_file_line_column_without_duplicates() -> None:
    diagnostics = [
        Diagnostic("b.yaml", 1, 1, "", "x"),
        Diagnostic("a.yaml", 10, 2, "p", "y"),
        Diagnostic("a.yaml", 9, 30, "p", "z"),
        Diagnostic("a.yaml", 10, 2, "p", "y"),
        Diagnostic("a.yaml", 10, 1, "p", "w"),
    ]
    assert [(d.file, d.line, d.column) for d in sort_diagnostics(diagnostics)] == [
        ("a.yaml", 9, 30),
        ("a.yaml", 10, 1),
        ("a.yaml", 10, 2),
        ("b.yaml", 1, 1),
    ]


def test_summary_grammar() -> None:
    one = Diagnostic("a.yaml", 1, 1, "", "x")
    assert summarize([one]) == "1 error in 1 file"
    assert summarize([one, Diagnostic("b.yaml", 1, 1, "", "y"), one]) == "3 errors in 2 files"


def test_config_invalid_needs_diagnostics_and_sorts_them() -> None:
    with pytest.raises(ValueError):
        ConfigInvalid([])
    error = ConfigInvalid(
        [Diagnostic("a.yaml", 2, 1, "", "b"), Diagnostic("a.yaml", 1, 1, "", "a")]
    )
    assert [d.line for d in error.diagnostics] == [1, 2]
    assert str(error) == "2 errors in 1 file:\na.yaml:1:1: a\na.yaml:2:1: b"


def test_renderings() -> None:
    diagnostics = [Diagnostic("dir/a,b.yaml", 3, 4, "users.x", "50% done\nnext line")]
    assert render_text(diagnostics) == "dir/a,b.yaml:3:4: users.x: 50% done\nnext line\n"
    assert render_github(diagnostics) == (
        "::error file=dir/a%2Cb.yaml,line=3,col=4,title=omnisync validate::"
        "users.x: 50%25 done%0Anext line\n"
    )
    document = json.loads(render_json(diagnostics, valid=False, files=["dir/a,b.yaml"]))
    assert document["summary"] == "1 error in 1 file"
    assert document["diagnostics"] == [
        {
            "file": "dir/a,b.yaml",
            "line": 3,
            "column": 4,
            "path": "users.x",
            "message": "50% done\nnext line",
        }
    ]


def test_did_you_mean() -> None:
    assert did_you_mean("segmnet", ["segment", "source"]) == " (did you mean 'segment'?)"
    assert did_you_mean("zzz", ["segment", "source"]) == ""
