"""Validated plain data to the frozen :class:`~omnisync.config.model.Config`.

Pure: paths are joined as strings, the environment arrives as a mapping.
A key left out takes the model's default, except the defaults that depend on
other values, applied here (``Export.tag`` is the segment's name,
``Connection.display_name`` the connection's, ``DaemonSettings.state_dir``
per :func:`default_state_dir`, an export's guards come from the daemon's).
Relative paths are resolved against the directory of the file that names
them, durations become seconds and shares (``"20%"``) fractions.

The data must have been checked by the schema. Values the schema found wrong
are dropped and the entry built from the rest, so that the semantic rules can
still check it; an entry whose required field was wrong is left out.
"""

from __future__ import annotations

import copy
import os.path
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from omnisync.config.diagnostics import Diagnostic, PathParts, dotted, nearest_position
from omnisync.config.durations import parse_duration
from omnisync.config.model import (
    DEFAULT_LEASE_SECONDS,
    MAX_LEASE_SECONDS,
    MIN_LEASE_SECONDS,
    Config,
    Connection,
    Consent,
    CsvOptions,
    DaemonSettings,
    Export,
    FieldMapping,
    Guards,
    Position,
    RateLimit,
    Schedule,
    SecretRef,
    Segment,
    Source,
    StateSettings,
    User,
)

#: Upper bound for ``every``: a schedule that runs less than yearly is a mistake.
MAX_INTERVAL_SECONDS = 366 * 86400
MAX_DEBOUNCE_SECONDS = 3600.0
_LEASE_TOO_SHORT = "must be at least 3s: a shorter lease is lost to a slow renewal"
_LEASE_TOO_LONG = "must be at most 10m: a dead replica's brands would wait that long"


@dataclass(frozen=True)
class BuildResult:
    """The built config and what could not be built.

    ``skipped`` names the entries (``("exports", "vip")``) and sections
    (``("users",)``) left out; ``flawed`` every path with a problem, from
    the schema or from building, so that rules about those values are not run
    on the defaults that stand in for them.
    """

    config: Config
    diagnostics: tuple[Diagnostic, ...]
    skipped: frozenset[PathParts]
    flawed: frozenset[PathParts]


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
    problems: frozenset[PathParts] = frozenset(),
) -> BuildResult:
    """Build a :class:`Config` from merged data that the schema has checked.

    ``base_dirs`` maps each entry (``("sources", "cdp")``, ``("daemon",)``)
    to the absolute directory of the file it came from. ``problems`` are the
    paths the schema found wrong: the values at those paths are dropped and
    the entry is built from the rest (so that the rules still check it), or
    left out when what remains lacks a required field.
    """
    builder = _Builder(positions, base_dirs, home=home, files=files, problems=problems)
    schedules = builder.section(
        data, "schedules", lambda name, body: builder.schedule(name, body, ("schedules", name))
    )
    daemon = builder.lenient(("daemon",), data.get("daemon", {})) or {}
    default_guards = _guards(daemon.get("guards"), Guards())
    config = Config(
        version=int(data.get("version", 1)) if isinstance(data.get("version"), int) else 1,
        users=builder.section(data, "users", lambda name, body: User(name=name, role=body["role"])),
        sources=builder.section(data, "sources", builder.source),
        segments=builder.section(
            data,
            "segments",
            lambda name, body: Segment(name=name, **body),
        ),
        connections=builder.section(data, "connections", builder.connection),
        schedules=schedules,
        exports=builder.section(
            data,
            "exports",
            lambda name, body: builder.export(name, body, schedules, guards=default_guards),
        ),
        daemon=replace(builder.daemon(daemon, environ), guards=default_guards),
        files=files,
        positions={dotted(path): position for path, position in positions.items()},
    )
    return BuildResult(
        config,
        tuple(builder.diagnostics),
        frozenset(builder.skipped),
        frozenset(builder.problems),
    )


_Entry = TypeVar("_Entry")


class _Builder:
    def __init__(
        self,
        positions: Mapping[PathParts, Position],
        base_dirs: Mapping[PathParts, str],
        *,
        home: str,
        files: tuple[str, ...],
        problems: frozenset[PathParts],
    ) -> None:
        self.positions = positions
        self.base_dirs = base_dirs
        self.home = home
        self.files = files
        self.problems = set(problems)
        self.skipped: set[PathParts] = set()
        self.diagnostics: list[Diagnostic] = []

    def entries(self, data: Mapping[str, Any], section: str) -> list[tuple[str, dict[str, Any]]]:
        """The entries of ``section`` with wrong values dropped; unusable ones are skipped."""
        body = data.get(section)
        if body is None:
            return []
        if not isinstance(body, dict) or (section,) in self.problems:
            self.skipped.add((section,))
            return []
        usable = []
        for name, entry in body.items():
            lenient = self.lenient((section, name), entry)
            if lenient is None:
                self.skipped.add((section, name))
            else:
                usable.append((name, lenient))
        return usable

    def section(
        self,
        data: Mapping[str, Any],
        section: str,
        build: Callable[[str, dict[str, Any]], _Entry | None],
    ) -> dict[str, _Entry]:
        built = {}
        for name, body in self.entries(data, section):
            try:
                entry = build(name, body)
            except (KeyError, TypeError):
                # A required field was dropped for being wrong (and reported): a KeyError
                # from body[...], a TypeError from a dataclass built from the body's keys.
                entry = None
            if entry is None:
                self.skipped.add((section, name))
            else:
                built[name] = entry
        return built

    def lenient(self, entry_path: PathParts, entry: object) -> dict[str, Any] | None:
        """A copy of ``entry`` without the values at problem paths, or ``None`` when the
        problem is the entry itself."""
        if not isinstance(entry, dict):
            return None
        size = len(entry_path)
        inside = [path for path in self.problems if path[:size] == entry_path]
        if any(len(path) == size for path in inside):
            return None
        result = copy.deepcopy(entry)
        for path in inside:
            # Drop the innermost mapping key on the path: for "allowed_users.1" the list.
            keys = list(path[size:])
            while keys and not isinstance(keys[-1], str):
                keys.pop()
            parent: Any = result
            for key in keys[:-1]:
                parent = parent.get(key) if isinstance(parent, dict) else None
            if isinstance(parent, dict) and keys:
                parent.pop(keys[-1], None)
        return result

    def problem(self, path: PathParts, message: str) -> None:
        first_file = self.files[0] if self.files else "<config>"
        position = nearest_position(self.positions, path, file=first_file)
        self.diagnostics.append(Diagnostic.at(position, path, message))
        self.problems.add(path)

    def path(self, value: str, entry: PathParts) -> str:
        return resolve_path(value, base_dir=self.base_dirs.get(entry, "/"), home=self.home)

    def secret(self, body: Mapping[str, str], entry: PathParts) -> SecretRef:
        if "env" in body:
            return SecretRef("env", body["env"])
        if "file" in body:
            return SecretRef("file", self.path(body["file"], entry))
        return SecretRef("credential", body["credential"])

    def seconds(
        self,
        path: PathParts,
        written: object,
        *,
        at_least: tuple[float, str] | None = None,
        at_most: tuple[float, str],
    ) -> float | None:
        """``written``, a duration the schema admitted, in seconds; ``None`` after reporting
        why it cannot be used: it is not finite (the schema admits ``.inf``) or is below
        ``at_least`` or above ``at_most`` (each a bound and the message for crossing it)."""
        try:
            seconds = parse_duration(written)
        except ValueError as error:
            self.problem(path, str(error))
            return None
        # parse_duration refuses a negative duration: no bound below unless given.
        minimum, too_short = at_least or (0.0, "")
        maximum, too_long = at_most
        if seconds < minimum or seconds > maximum:
            self.problem(path, too_short if seconds < minimum else too_long)
            return None
        return seconds

    def state(self, body: Mapping[str, Any] | None, entry: PathParts) -> StateSettings:
        """``daemon.state``; a lease the schema let through but that cannot work is a problem."""
        if body is None:
            return StateSettings()
        lease = self.seconds(
            ("daemon", "state", "lease"),
            body.get("lease", DEFAULT_LEASE_SECONDS),
            at_least=(MIN_LEASE_SECONDS, _LEASE_TOO_SHORT),
            at_most=(MAX_LEASE_SECONDS, _LEASE_TOO_LONG),
        )
        dsn = body.get("dsn")
        if dsn is not None and body.get("kind") != "postgres":
            self.problem(("daemon", "state", "dsn"), "only a `postgres` state store has a DSN")
        if dsn is None and body.get("kind") == "postgres":
            self.problem(
                ("daemon", "state"),
                "a `postgres` state store needs `dsn` (a secret reference to its connection "
                "string, such as {env: OMNISYNC_STATE_DSN})",
            )
        return StateSettings(
            dsn=self.secret(dsn, entry) if dsn is not None else None,
            lease_seconds=DEFAULT_LEASE_SECONDS if lease is None else lease,
            **_given(body, "kind"),
        )

    def source(self, name: str, body: Mapping[str, Any]) -> Source:
        entry = ("sources", name)
        path = body.get("path")
        dsn = body.get("dsn")
        return Source(
            name=name,
            kind=body["kind"],
            path=self.path(path, entry) if path is not None else None,
            dsn=self.secret(dsn, entry) if dsn is not None else None,
            csv=CsvOptions(**_given(body, "encoding", "delimiter")),
        )

    def connection(self, name: str, body: Mapping[str, Any]) -> Connection:
        return Connection(
            name=name,
            display_name=body.get("display_name", name),
            api_key=self.secret(body["api_key"], ("connections", name)),
            allowed_users=tuple(body.get("allowed_users", ())),
            rate_limit=RateLimit(**body.get("rate_limit", {})),
            **_given(body, "data_transfer_accepted", "base_url"),
        )

    def schedule(
        self, name: str | None, body: Mapping[str, Any], path: PathParts
    ) -> Schedule | None:
        if "cron" in body:
            return Schedule(name=name, cron=body["cron"], **_given(body, "timezone"))
        seconds = self.seconds(
            (*path, "every"),
            body["every"],
            at_least=(1.0, "must be at least 1 second"),
            at_most=(MAX_INTERVAL_SECONDS, "must be at most 366 days"),
        )
        if seconds is None:
            return None
        if not seconds.is_integer():
            self.problem((*path, "every"), "must be a whole number of seconds")
            return None
        written = body["every"]
        # A bare number is seconds: shown as "90s", a string as written ("15m").
        text = written.strip() if isinstance(written, str) else f"{written}s"
        return Schedule(name=name, every_seconds=int(seconds), every_text=text)

    def export(
        self,
        name: str,
        body: Mapping[str, Any],
        schedules: Mapping[str, Schedule],
        *,
        guards: Guards,
    ) -> Export:
        path: PathParts = ("exports", name)
        written = body.get("schedule")
        schedule: Schedule | None = None
        if isinstance(written, str):
            # An unknown name stays a bare reference; the rules report it.
            schedule = schedules.get(written, Schedule(name=written))
        elif isinstance(written, dict):
            # A wrong inline schedule is reported; the rest of the export is still checked.
            schedule = self.schedule(None, written, (*path, "schedule"))
        consent = body.get("consent")
        return Export(
            name=name,
            segment=body["segment"],
            connection=body["connection"],
            owner=body["owner"],
            mapping=FieldMapping(**body["mapping"]),
            tag=body.get("tag", body["segment"]),
            consent=Consent(**consent) if consent is not None else None,
            schedule=schedule,
            guards=_guards(body.get("guards"), guards),
            **_given(body, "on_leave", "send_welcome_message", "max_profiles", "enabled"),
        )

    def daemon(self, body: Mapping[str, Any], environ: Mapping[str, str]) -> DaemonSettings:
        entry: PathParts = ("daemon",)
        control = body.get("control", {})
        token = control.get("token")
        debounce = self.seconds(
            ("daemon", "reload_debounce"),
            body.get("reload_debounce", DaemonSettings.reload_debounce_seconds),
            at_most=(MAX_DEBOUNCE_SECONDS, "must be at most 1h"),
        )
        state_dir = body.get("state_dir")
        return DaemonSettings(
            state=self.state(body.get("state"), entry),
            control_listen=control.get("listen", DaemonSettings.control_listen),
            state_dir=(
                self.path(state_dir, entry)
                if state_dir is not None
                else default_state_dir(environ, home=self.home)
            ),
            control_token=self.secret(token, entry) if token is not None else None,
            reload_debounce_seconds=(
                DaemonSettings.reload_debounce_seconds if debounce is None else debounce
            ),
            **_given(body, "replica_id", "log_format"),
        )


def _given(body: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The ``keys`` that ``body`` sets, for a model class whose defaults stand for the rest."""
    return {key: body[key] for key in keys if key in body}


def _guards(body: Mapping[str, Any] | None, defaults: Guards) -> Guards:
    """``defaults`` with what a ``guards`` object sets; a share such as ``"20%"`` becomes
    ``0.2``, and ``"100%"`` turns its guard off (``None``)."""
    if body is None:
        return defaults
    given: dict[str, Any] = {
        key: _share(value) if isinstance(value, str) else value for key, value in body.items()
    }
    return replace(defaults, **given)


def _share(text: str) -> float | None:
    share = float(text.removesuffix("%")) / 100
    return None if share >= 1 else share
