"""The daemon (issue 5): schedules exports, reconciles on every tick, hot-reloads the config.

Modules: ``reconcile`` (pure: config → job actions), ``retrying`` (pure:
backoff), ``status`` (pure: the ``/status`` document), ``runs`` (one run at
a time per export), ``scheduler`` (APScheduler), ``supervisor`` (applies
reconcile's actions), ``watcher`` (watchfiles), ``control`` (HTTP endpoint),
``discovery`` (finding a running daemon), ``metrics`` (Prometheus),
``notify`` (systemd), ``service`` (the main loop).
"""
