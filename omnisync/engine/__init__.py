"""The export engine: one export run, end to end.

- :mod:`omnisync.engine.staging`: read a segment once into SQLite temp tables
  and diff it against the ledger (``stage_export``; ``diff`` in SQLite, ``diff_postgres``
  inside a PostgreSQL state store).
- :mod:`omnisync.engine.diff`: the set-based SQL of that diff.
- :mod:`omnisync.engine.report`: the plan report (``PlanReport``) and the
  tally that builds it; :mod:`omnisync.engine.plan_render` renders it as
  text, JSON or Markdown.
- :mod:`omnisync.engine.runner`: running an export (staging, mapping,
  delivery, ledger).
- :mod:`omnisync.engine.drift`: Omnisend read back against the ledger
  (``omnisync drift``); :mod:`omnisync.engine.explain`: one person, per
  export (``omnisync explain``).
"""
