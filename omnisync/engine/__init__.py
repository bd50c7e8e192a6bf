"""The export engine: one export run, end to end (see docs/ARCHITECTURE.md, "Export engine").

Staging and diffing a segment (``staging``, ``diff``, ``diff_postgres``), the
plan (``report``, rendered by ``plan_render``), a run (``runner``), and the
read-backs ``drift`` and ``explain``.
"""
