"""Validated plain data to the frozen :class:`~omnisync.config.model.Config`.

Pure. A key left out takes the model's default, except defaults that depend on
other values (``Export.tag`` is the segment's name, ``Connection.display_name``
the connection's, ``DaemonSettings.state_dir`` per :func:`default_state_dir`, an
export's guards the daemon's). Relative paths are resolved against the directory
of the file that names them, durations become seconds and shares (``"20%"``)
fractions, and a whole-number float (``4e2``, ``400.0``: JSON Schema's ``integer``
admits it) in a field the model types ``int`` becomes that ``int``. Values the
schema found wrong are dropped and the entry built from the rest, so the semantic
rules can still check it; an entry lacking a required field is left out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os.path
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import TYPE_CHECKING, Any, TypeVar

from omnisync.config.diagnostics import Diagnostic, PathParts, dotted, nearest_position
from omnisync.config.model import (
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
from omnisync.config.rules import check_config

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: The bounds of each duration (by its key), and why a value beyond one cannot work.
_DURATION_BOUNDS = {
    "lease": (
        3.0,
        600.0,
        "must be at least 3s: a shorter lease is lost to a slow renewal",
        "must be at most 10m: a dead replica's brands would wait that long",
    ),
    # A schedule that runs less than yearly is a mistake.
    "every": (1.0, 366 * 86400.0, "must be at least 1 second", "must be at most 366 days"),
    "reload_debounce": (0.0, 3600.0, "", "must be at most 1h"),
}
_Model = TypeVar("_Model", bound="DataclassInstance")
_Entry = TypeVar("_Entry")


def parse_duration(written: float | str) -> float:
    """Seconds in a duration the schema admitted: a number of seconds, or a number with
    a unit (``15m``, ``500ms``, ``1.5h``)."""
    if not isinstance(written, str):
        return float(written)
    number = written.rstrip("smhd")
    return float(number) * _UNIT_SECONDS[written[len(number) :]]


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


def home_directory(environ: Mapping[str, str]) -> str:
    """Where ``~`` in a config path points: ``$HOME``, else the account's home."""
    return environ.get("HOME") or os.path.expanduser("~")


def resolve_path(value: str, base_dir: str, home: str) -> str:
    """``value`` as an absolute path: ``~`` is ``home``, relative is under ``base_dir`` (the
    directory of the file that wrote it)."""
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
    files: tuple[str, ...],
    revision: str,
    problems: frozenset[PathParts],
) -> tuple[Config, tuple[Diagnostic, ...]]:
    """A :class:`Config` from merged data the schema has checked, and every problem that
    building and the semantic rules find in it.

    ``positions`` must hold the root ``()``. ``base_dirs`` maps each entry
    (``("sources", "cdp")``, ``("daemon",)``) to the absolute directory of the
    file it came from; ``problems`` are the paths the schema found wrong.
    """
    builder = _Builder(
        data=data, positions=positions, base_dirs=base_dirs, home=home, problems=set(problems)
    )
    schedules = builder.section(
        "schedules", lambda name, body: builder.schedule(name, body, ("schedules", name))
    )
    daemon = builder.daemon(environ)
    config = Config(
        version=1,
        users=builder.section("users", lambda name, body: _model(User, body, name=name)),
        sources=builder.section("sources", builder.source),
        segments=builder.section("segments", lambda name, body: _model(Segment, body, name=name)),
        connections=builder.section("connections", builder.connection),
        schedules=schedules,
        exports=builder.section(
            "exports",
            lambda name, body: builder.export(name, body, schedules, guards=daemon.guards),
        ),
        daemon=daemon,
        revision=revision,
        files=files,
        positions={dotted(path): position for path, position in positions.items()},
    )
    rules = check_config(config, flawed=builder.problems)
    return config, (*builder.diagnostics, *rules)


class _Dropped(Exception):
    """A field that an entry requires was dropped for being wrong (and was reported)."""


class _Body(dict[str, Any]):
    """An entry's data without its wrong values; reading a dropped key raises :class:`_Dropped`."""

    def __missing__(self, key: str) -> Any:
        raise _Dropped(key)


def _model(model: type[_Model], body: Mapping[str, Any], /, **fields: Any) -> _Model:
    """``model`` from ``body`` with ``fields`` overriding it, or :class:`_Dropped` when a field
    without a default is missing. A key that is not a field raises ``TypeError``.

    Where the schema says ``integer``, it also admits ``4e2`` and ``400.0`` (JSON has one
    number type; check-jsonschema admits them too, so omnisync may not refuse them), and
    YAML reads both as floats: the model's integer fields are the schema's integers
    (tests/config/test_whole_numbers.py), so this is the one place they become ``int``.
    """
    given = {**body, **fields}
    integers = _integer_fields(model)
    for field in dataclasses.fields(model):
        value = given.get(field.name)
        if field.name not in given and field.default is field.default_factory is MISSING:
            raise _Dropped(field.name)
        if field.name in integers and isinstance(value, float) and value.is_integer():
            given[field.name] = int(value)
    return model(**given)


@functools.cache
def _integer_fields(model: type[DataclassInstance]) -> frozenset[str]:
    """The fields of ``model`` typed ``int`` or a union with ``int`` in it."""

    def integer(hint: object) -> bool:
        union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        return hint is int or (union and int in typing.get_args(hint))

    return frozenset(name for name, hint in typing.get_type_hints(model).items() if integer(hint))


@dataclasses.dataclass
class _Builder:
    data: Mapping[str, Any]
    positions: Mapping[PathParts, Position]
    base_dirs: Mapping[PathParts, str]
    home: str
    problems: set[PathParts]
    diagnostics: list[Diagnostic] = dataclasses.field(default_factory=list)

    def section(self, section: str, build: Callable[[str, _Body], _Entry]) -> dict[str, _Entry]:
        """The entries of ``section`` that can be built; the others have reported flaws."""
        entries = self.data.get(section)
        # Not `(section,) in problems`: one file's null must not hide the other files' entries.
        if not isinstance(entries, dict):
            return {}
        built = {}
        for name, entry in entries.items():
            body = self.kept(entry, (section, name))
            if body is not None:
                with contextlib.suppress(_Dropped):
                    built[name] = build(name, _Body(body))
        return built

    def kept(self, value: Any, path: PathParts) -> Any:
        """A copy of ``value`` (at ``path``) without the values at problem paths; ``None``
        when ``value`` itself is wrong."""
        if path in self.problems:
            return None
        if isinstance(value, dict):
            kept = {key: self.kept(item, (*path, key)) for key, item in value.items()}
            return {key: item for key, item in kept.items() if item is not None}
        if isinstance(value, list):
            kept_items = (self.kept(item, (*path, index)) for index, item in enumerate(value))
            return [item for item in kept_items if item is not None]
        return value

    def problem(self, path: PathParts, message: str) -> None:
        self.diagnostics.append(
            Diagnostic.at(nearest_position(self.positions, path), path, message)
        )
        self.problems.add(path)

    def path(self, value: str, entry: PathParts) -> str:
        """``value`` as :func:`resolve_path` reads it in the file that wrote ``entry``."""
        return resolve_path(value, self.base_dirs.get(entry, "/"), self.home)

    def secret(self, body: Mapping[str, str] | None, entry: PathParts) -> SecretRef | None:
        """The reference ``body`` writes; ``None`` when absent or dropped as wrong."""
        if not body:
            return None
        ((kind, name),) = body.items()  # the schema admits exactly one
        return SecretRef(kind, self.path(name, entry) if kind == "file" else name)  # type: ignore[arg-type]

    def seconds(self, path: PathParts, written: float | str) -> float | None:
        """``written``, a duration the schema admitted, in seconds; ``None`` after reporting
        that it is beyond its bounds (the schema admits ``.inf``)."""
        minimum, maximum, too_short, too_long = _DURATION_BOUNDS[str(path[-1])]
        seconds = parse_duration(written)
        if minimum <= seconds <= maximum:
            return seconds
        if math.isnan(seconds):  # neither too short nor too long
            self.problem(path, "must be a duration such as 15m or 30s, not .nan")
        else:
            self.problem(path, too_short if seconds < minimum else too_long)
        return None

    def state(self, body: Mapping[str, Any] | None) -> StateSettings:
        """``daemon.state``; a lease the schema let through but that cannot work is a problem."""
        if body is None:
            return StateSettings()
        dsn = self.secret(body.get("dsn"), ("daemon",))
        if dsn is not None and body.get("kind") != "postgres":
            self.problem(("daemon", "state", "dsn"), "only a `postgres` state store has a DSN")
        if dsn is None and body.get("kind") == "postgres":
            self.problem(
                ("daemon", "state"),
                "a `postgres` state store needs `dsn` (a secret reference to its connection "
                "string, such as {env: OMNISYNC_STATE_DSN})",
            )
        default_lease = StateSettings.lease_seconds
        lease = self.seconds(("daemon", "state", "lease"), body.get("lease", default_lease))
        # `or`: a lease is at least 3s, so only a refused one is falsy.
        return StateSettings(dsn=dsn, lease_seconds=lease or default_lease, **_given(body, "kind"))

    def source(self, name: str, body: _Body) -> Source:
        entry = ("sources", name)
        path = body.get("path")
        return Source(
            name=name,
            kind=body["kind"],
            path=self.path(path, entry) if path is not None else None,
            dsn=self.secret(body.get("dsn"), entry),
            csv=CsvOptions(**_given(body, "encoding", "delimiter")),
        )

    def connection(self, name: str, body: _Body) -> Connection:
        api_key = self.secret(body["api_key"], ("connections", name))
        if api_key is None:
            raise _Dropped("api_key")
        return _model(
            Connection,
            body,
            name=name,
            display_name=body.get("display_name", name),
            api_key=api_key,
            allowed_users=tuple(body.get("allowed_users", ())),
            rate_limit=_model(RateLimit, body.get("rate_limit", {})),
        )

    def schedule(self, name: str | None, body: _Body, path: PathParts) -> Schedule:
        if "cron" in body:
            return Schedule(name=name, cron=body["cron"], **_given(body, "timezone"))
        written = body["every"]
        seconds = self.seconds((*path, "every"), written)
        if seconds is not None and not seconds.is_integer():
            self.problem((*path, "every"), "must be a whole number of seconds")
            seconds = None
        if seconds is None:
            raise _Dropped("every")
        # A bare number is seconds: shown as "90s" (and 1e3 as "1000s", not "1000.0s"), a
        # string as written ("15m").
        text = written if isinstance(written, str) else f"{int(seconds)}s"
        return Schedule(name=name, every_seconds=int(seconds), every_text=text)

    def export(
        self, name: str, body: _Body, schedules: Mapping[str, Schedule], *, guards: Guards
    ) -> Export:
        written = body.get("schedule")
        schedule: Schedule | None = None
        if isinstance(written, str):
            # An unknown name stays a bare reference; the rules report it.
            schedule = schedules.get(written, Schedule(name=written))
        elif isinstance(written, dict):
            # A wrong inline schedule is reported; the rest of the export is still checked.
            with contextlib.suppress(_Dropped):
                schedule = self.schedule(None, _Body(written), ("exports", name, "schedule"))
        consent = body.get("consent")
        return _model(
            Export,
            body,
            name=name,
            mapping=_model(FieldMapping, body["mapping"]),
            tag=body.get("tag", body["segment"]),
            consent=_model(Consent, consent) if consent is not None else None,
            schedule=schedule,
            guards=_guards(body.get("guards"), guards),
        )

    def daemon(self, environ: Mapping[str, str]) -> DaemonSettings:
        entry: PathParts = ("daemon",)
        body = self.kept(self.data.get("daemon", {}), entry) or {}
        control = body.get("control", {})
        default_debounce = DaemonSettings.reload_debounce_seconds
        debounce = self.seconds(
            ("daemon", "reload_debounce"), body.get("reload_debounce", default_debounce)
        )
        state_dir = body.get("state_dir")
        return DaemonSettings(
            state=self.state(body.get("state")),
            control_listen=control.get("listen", DaemonSettings.control_listen),
            state_dir=(
                self.path(state_dir, entry)
                if state_dir is not None
                else default_state_dir(environ, home=self.home)
            ),
            control_token=self.secret(control.get("token"), entry),
            reload_debounce_seconds=default_debounce if debounce is None else debounce,
            guards=_guards(body.get("guards"), Guards()),
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
    shares = {
        key: _share(value) if isinstance(value, str) else value for key, value in body.items()
    }
    return _model(Guards, dataclasses.asdict(defaults), **shares)


def _share(text: str) -> float | None:
    share = float(text.removesuffix("%")) / 100
    return None if share >= 1 else share
