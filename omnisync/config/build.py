"""Validated plain data to the frozen :class:`~omnisync.config.model.Config`.

Pure: paths are joined as strings, the environment arrives as a mapping.
Defaults are applied here (``Export.tag`` is the segment's name,
``Connection.display_name`` the connection's, ``DaemonSettings.state_dir``
per :func:`default_state_dir`), relative paths are resolved against the
directory of the file that names them, and durations become seconds.

The data must have passed the schema; entries that did not are named in
``skip`` and left out, so that the semantic rules can still run on the rest.
"""

from __future__ import annotations

import os.path
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omnisync.config.diagnostics import Diagnostic, PathParts, dotted
from omnisync.config.durations import parse_duration
from omnisync.config.model import (
    DEFAULT_BASE_URL,
    Config,
    Connection,
    Consent,
    CsvOptions,
    DaemonSettings,
    Export,
    FieldMapping,
    Position,
    RateLimit,
    Schedule,
    SecretRef,
    Segment,
    Source,
    User,
)

#: Upper bound for ``every``: a schedule that runs less than yearly is a mistake.
MAX_INTERVAL_SECONDS = 366 * 86400
MAX_DEBOUNCE_SECONDS = 3600.0


@dataclass(frozen=True)
class BuildResult:
    """The built config, problems found while converting, and every entry left out."""

    config: Config
    diagnostics: tuple[Diagnostic, ...]
    skipped: frozenset[PathParts]


def default_state_dir(environ: Mapping[str, str], *, home: str) -> str:
    """``$STATE_DIRECTORY`` (its first entry), else ``$XDG_STATE_HOME/omnisync``, else
    ``~/.local/state/omnisync``. Relative values of the variables are ignored, as the
    XDG specification says."""
    first_state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if os.path.isabs(first_state):
        return os.path.normpath(first_state)
    xdg_state = environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg_state):
        return os.path.join(os.path.normpath(xdg_state), "omnisync")
    return os.path.join(home, ".local", "state", "omnisync")


def resolve_path(value: str, *, base_dir: str, home: str) -> str:
    """``value`` as an absolute, normalised path: ``~`` is ``home``, relative is under
    ``base_dir``."""
    if value == "~" or value.startswith("~/"):
        value = home + value[1:]
    return os.path.normpath(os.path.join(base_dir, value))


def build_config(
    data: Mapping[str, Any],
    *,
    positions: Mapping[PathParts, Position],
    base_dirs: Mapping[PathParts, str],
    environ: Mapping[str, str],
    home: str,
    files: tuple[str, ...] = (),
    skip: frozenset[PathParts] = frozenset(),
) -> BuildResult:
    """Build a :class:`Config` from merged, schema-checked ``data``.

    ``base_dirs`` maps each entry (``("sources", "cdp")``, ``("daemon",)``)
    to the absolute directory of the file it came from. Entries in ``skip``,
    or in a section in ``skip``, are left out.
    """
    builder = _Builder(positions, base_dirs, home=home, files=files, skip=skip)
    schedules = {
        name: schedule
        for name, body in builder.entries(data, "schedules")
        if (schedule := builder.schedule(name, body, ("schedules", name))) is not None
    }
    exports = {}
    for name, body in builder.entries(data, "exports"):
        export = builder.export(name, body, schedules)
        if export is not None:
            exports[name] = export
    daemon_body = data.get("daemon") if not builder.is_skipped(("daemon",)) else None
    config = Config(
        version=int(data.get("version", 1)) if isinstance(data.get("version"), int) else 1,
        users={
            name: User(name=name, role=body["role"])
            for name, body in builder.entries(data, "users")
        },
        sources={
            name: builder.source(name, body) for name, body in builder.entries(data, "sources")
        },
        segments={
            name: Segment(
                name=name, source=body["source"], query=body.get("query"), key=body.get("key")
            )
            for name, body in builder.entries(data, "segments")
        },
        connections={
            name: builder.connection(name, body)
            for name, body in builder.entries(data, "connections")
        },
        schedules=schedules,
        exports=exports,
        daemon=builder.daemon(daemon_body if isinstance(daemon_body, dict) else {}, environ),
        files=files,
        positions={dotted(path): position for path, position in positions.items()},
    )
    return BuildResult(config, tuple(builder.diagnostics), frozenset(builder.skip))


class _Builder:
    def __init__(
        self,
        positions: Mapping[PathParts, Position],
        base_dirs: Mapping[PathParts, str],
        *,
        home: str,
        files: tuple[str, ...],
        skip: frozenset[PathParts],
    ) -> None:
        self.positions = positions
        self.base_dirs = base_dirs
        self.home = home
        self.files = files
        self.skip = set(skip)
        self.diagnostics: list[Diagnostic] = []

    def is_skipped(self, path: PathParts) -> bool:
        return any(path[: len(skipped)] == skipped for skipped in self.skip if skipped)

    def entries(self, data: Mapping[str, Any], section: str) -> list[tuple[str, dict[str, Any]]]:
        body = data.get(section)
        if not isinstance(body, dict) or self.is_skipped((section,)):
            return []
        return [
            (name, entry)
            for name, entry in body.items()
            if isinstance(entry, dict) and not self.is_skipped((section, name))
        ]

    def problem(self, path: PathParts, message: str) -> None:
        position = None
        probe = path
        while probe and position is None:
            position = self.positions.get(probe)
            probe = probe[:-1]
        if position is None:
            position = Position(self.files[0] if self.files else "<config>", 1, 1)
        self.diagnostics.append(Diagnostic.at(position, path, message))
        self.skip.add(path[:2])

    def path(self, value: str, entry: PathParts) -> str:
        return resolve_path(value, base_dir=self.base_dirs.get(entry, "/"), home=self.home)

    def secret(self, body: Mapping[str, str], entry: PathParts) -> SecretRef:
        if "env" in body:
            return SecretRef("env", body["env"])
        if "file" in body:
            return SecretRef("file", self.path(body["file"], entry))
        return SecretRef("credential", body["credential"])

    def source(self, name: str, body: Mapping[str, Any]) -> Source:
        entry = ("sources", name)
        path = body.get("path")
        dsn = body.get("dsn")
        return Source(
            name=name,
            kind=body["kind"],
            path=self.path(path, entry) if path is not None else None,
            dsn=self.secret(dsn, entry) if dsn is not None else None,
            csv=CsvOptions(
                encoding=body.get("encoding", "utf-8"), delimiter=body.get("delimiter", ",")
            ),
        )

    def connection(self, name: str, body: Mapping[str, Any]) -> Connection:
        rate_limit = body.get("rate_limit", {})
        return Connection(
            name=name,
            display_name=body.get("display_name", name),
            api_key=self.secret(body["api_key"], ("connections", name)),
            allowed_users=tuple(body.get("allowed_users", ())),
            data_transfer_accepted=body.get("data_transfer_accepted", False),
            base_url=body.get("base_url", DEFAULT_BASE_URL),
            rate_limit=RateLimit(
                requests_per_minute=rate_limit.get("requests_per_minute", 400),
                tags_per_minute=rate_limit.get("tags_per_minute", 60),
            ),
        )

    def schedule(
        self, name: str | None, body: Mapping[str, Any], path: PathParts
    ) -> Schedule | None:
        if "cron" in body:
            return Schedule(name=name, cron=body["cron"], timezone=body.get("timezone", "UTC"))
        try:
            seconds = parse_duration(body["every"])
        except ValueError as error:
            self.problem((*path, "every"), str(error))
            return None
        if seconds < 1:
            self.problem((*path, "every"), "must be at least 1 second")
            return None
        if not seconds.is_integer():
            self.problem((*path, "every"), "must be a whole number of seconds")
            return None
        if seconds > MAX_INTERVAL_SECONDS:
            self.problem((*path, "every"), "must be at most 366 days")
            return None
        return Schedule(name=name, every_seconds=int(seconds))

    def export(
        self, name: str, body: Mapping[str, Any], schedules: Mapping[str, Schedule]
    ) -> Export | None:
        path: PathParts = ("exports", name)
        written = body.get("schedule")
        schedule: Schedule | None = None
        if isinstance(written, str):
            # An unknown name stays a bare reference; the rules report it.
            schedule = schedules.get(written, Schedule(name=written))
        elif isinstance(written, dict):
            schedule = self.schedule(None, written, (*path, "schedule"))
            if schedule is None:
                return None
        mapping = body["mapping"]
        consent = body.get("consent")
        return Export(
            name=name,
            segment=body["segment"],
            connection=body["connection"],
            owner=body["owner"],
            mapping=FieldMapping(
                **{key: value for key, value in mapping.items() if key != "custom_properties"},
                custom_properties=dict(mapping.get("custom_properties", {})),
            ),
            tag=body.get("tag", body["segment"]),
            on_leave=body.get("on_leave", "untag"),
            consent=Consent(**consent) if consent is not None else None,
            send_welcome_message=body.get("send_welcome_message", False),
            max_profiles=body.get("max_profiles"),
            schedule=schedule,
            enabled=body.get("enabled", True),
        )

    def daemon(self, body: Mapping[str, Any], environ: Mapping[str, str]) -> DaemonSettings:
        entry: PathParts = ("daemon",)
        control = body.get("control", {})
        token = control.get("token")
        try:
            debounce = parse_duration(body.get("reload_debounce", 1.0))
        except ValueError as error:
            self.problem(("daemon", "reload_debounce"), str(error))
            debounce = 1.0
        if debounce > MAX_DEBOUNCE_SECONDS:
            self.problem(("daemon", "reload_debounce"), "must be at most 1h")
            debounce = 1.0
        state_dir = body.get("state_dir")
        return DaemonSettings(
            state_dir=(
                self.path(state_dir, entry)
                if state_dir is not None
                else default_state_dir(environ, home=self.home)
            ),
            control_listen=control.get("listen", "127.0.0.1:9187"),
            control_token=self.secret(token, entry) if token is not None else None,
            log_format=body.get("log_format", "text"),
            reload_debounce_seconds=debounce,
        )
