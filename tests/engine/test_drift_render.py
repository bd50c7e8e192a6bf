"""`omnisync drift --format markdown`: one table row per finding, whatever the e-mail holds."""

from __future__ import annotations

from omnisync.engine.drift import DriftFinding, DriftReport, render_markdown


def test_a_pipe_in_an_address_or_a_tag_stays_inside_its_cell():
    report = DriftReport(
        export="vip",
        tag="vip|gold",
        delivered=2,
        checked=2,
        skipped_in_flight=0,
        sample=None,
        seed=None,
        findings=(
            DriftFinding("|olena|@example.com", ("tag_missing",), tag="vip|gold"),
            DriftFinding("marko@example.com", ("fields",), fields=("first_name", "city")),
        ),
    )
    rows = [line for line in render_markdown(report).splitlines() if line.startswith("| `")]
    assert len(rows) == 2
    for row in rows:
        # Three cell borders: the unescaped pipes of a two-column row.
        assert row.replace("\\|", "").count("|") == 3, row
    assert "olena" not in rows[0]  # still masked
    assert "first_name, city" in rows[1]
