"""The daemon: schedules exports, reconciles on every tick, hot-reloads the config.

Modules: ``reconcile`` (pure: config → job actions), ``retrying`` (pure:
backoff), ``status`` (pure: the ``/status`` document), ``runs`` (one run at
a time per export), ``scheduler`` (APScheduler), ``supervisor`` (applies
reconcile's actions), ``watcher`` (watchfiles), ``control`` (the HTTP
endpoint on waitress), ``discovery`` (finding a running daemon), ``remote``
(runs through the daemon), ``loading`` (load, validate, resolve secrets),
``engine`` (the run function over the export engine), ``metrics``
(Prometheus), ``notify`` (systemd), ``service`` (the main loop).
"""
