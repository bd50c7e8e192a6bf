"""Packed in-flight items (``omnisync.inflight``): the packings agree and read back."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnisync.inflight import InflightItem, PackedItems, pack_columns, pack_items

emails = st.sampled_from(["a@x.io", "b@x.io", "c@x.io", "d@x.io", "Ж@x.io"])
fingerprints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
rows = st.lists(st.tuples(emails, fingerprints, st.booleans()), max_size=8)


@given(rows)
def test_packing_by_columns_equals_packing_items(given_rows: list[tuple[str, int, bool]]) -> None:
    listed = [InflightItem(*row) for row in given_rows]
    by_columns = pack_columns(
        [row[0] for row in given_rows],
        [row[1] for row in given_rows],
        [row[2] for row in given_rows],
    )
    assert by_columns == pack_items(listed)
    # One item per e-mail, the later winning, in the order first seen.
    latest = {item.email: item for item in listed}
    assert by_columns.items() == tuple(latest.values())
    assert by_columns.count == len(latest)


def test_the_text_is_the_stores_format() -> None:
    packed = pack_columns(["a@x.io", "b@x.io"], [1, -2], [True, False])
    assert orjson.loads(packed.text) == [["a@x.io", 1, 1], ["b@x.io", -2, 0]]
    assert packed == PackedItems('[["a@x.io",1,1],["b@x.io",-2,0]]', 2)


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one fingerprint and one then_tag per e-mail"):
        pack_columns(["a@x.io", "b@x.io"], [1], [True, False])
