"""All problems are reported at once, sorted, whichever combination of them is present."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisync.config.loader import try_load_config
from tests.config.helpers import BASE, ENVIRON, EXAMPLE

DELETE = object()

# Independent mistakes: (what to replace, replacement, the path its diagnostic names).
# Each touches a different line, so any combination yields one diagnostic for each.
MISTAKES = (
    ("    role: admin\n", "    role: boss\n", "users.olena.role"),
    ("exports:\n", "daemon:\n  log_format: xml\nexports:\n", "daemon.log_format"),
    ("    kind: sqlite\n", "    kind: mysql\n", "sources.cdp.kind"),
    ("    source: cdp\n", "    source: cdp\n    key: ''\n", "segments.vip.key"),
    (
        "    api_key: {env: OMNISEND_API_KEY}\n",
        "    api_key: plaintext-key\n",
        "connections.main.api_key",
    ),
    ("    owner: marko\n", "    owner: marko\n    tag: 'a,b'\n", "exports.vip.tag"),
    (
        "      email: email\n",
        "      email: email\n      colour: red\n",
        "exports.vip.mapping.colour",
    ),
    ("version: 1\n", "version: 1\nexprots: {}\n", "exprots"),
)


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=len(MISTAKES) - 1), min_size=1))
def test_each_independent_mistake_yields_one_diagnostic_all_sorted(chosen: set[int]) -> None:
    text = BASE
    for index in sorted(chosen):
        old, new, _ = MISTAKES[index]
        text = text.replace(old, new, 1)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "omnisync.yaml"
        path.write_text(text, encoding="utf-8")
        result = try_load_config(path, environ=ENVIRON)

    assert result.config is None
    assert sorted(diagnostic.path for diagnostic in result.diagnostics) == sorted(
        MISTAKES[index][2] for index in chosen
    )
    places = [(diagnostic.line, diagnostic.column) for diagnostic in result.diagnostics]
    assert places == sorted(places)


def test_three_independent_errors_yield_three() -> None:
    text = BASE
    for old, new, _ in MISTAKES[:3]:
        text = text.replace(old, new, 1)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "omnisync.yaml"
        path.write_text(text, encoding="utf-8")
        result = try_load_config(path, environ=ENVIRON)

    assert [diagnostic.path for diagnostic in result.diagnostics] == [
        "users.olena.role",
        "sources.cdp.kind",
        "daemon.log_format",
    ]


def _paths(node: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


_EXAMPLE_DATA = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
_EXAMPLE_PATHS = [path for path in _paths(_EXAMPLE_DATA) if path]
_WORDS = st.sampled_from(
    [
        "",
        "x",
        "vip",
        "main-store",
        "marko",
        "olena",
        "cdp",
        "0 3 * * *",
        "15m",
        "0s",
        "Europe/Kyiv",
        "sqlite",
        "csv",
        "postgres",
        "every-six-hours",
        "email",
        "a,b",
        " x",
        "127.0.0.1:1",
        "0.0.0.0:80",
    ]
)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | _WORDS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_WORDS, children, max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(_EXAMPLE_PATHS), st.one_of(_VALUES, st.just(DELETE))),
        min_size=1,
        max_size=4,
    )
)
def test_any_mangled_example_loads_or_is_explained_never_raises(
    changes: list[tuple[tuple[str | int, ...], object]],
) -> None:
    data = copy.deepcopy(_EXAMPLE_DATA)
    for path, value in changes:
        parent = data
        for key in path[:-1]:
            if not isinstance(parent, dict | list):
                break
            try:
                parent = parent[key]
            except (KeyError, IndexError, TypeError):
                break
        else:
            if isinstance(parent, dict) and isinstance(path[-1], str):
                if value is DELETE:
                    parent.pop(path[-1], None)
                else:
                    parent[path[-1]] = value
            elif isinstance(parent, list) and isinstance(path[-1], int) and path[-1] < len(parent):
                parent[path[-1]] = None if value is DELETE else value
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "omnisync.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        result = try_load_config(path, environ=ENVIRON)

    assert (result.config is None) == bool(result.diagnostics)
    for diagnostic in result.diagnostics:
        assert diagnostic.line >= 1 and diagnostic.column >= 1
