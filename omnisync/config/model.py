"""The frozen configuration model: what the rest of omnisync consumes once a config has
passed the schema (``schemas/omnisync.schema.json``, the source of truth for its
structure) and the semantic rules. It holds secret references, never secret values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Literal

from omnisync.logs import LogFormat

SourceKind = Literal["sqlite", "csv", "jsonl", "postgres"]
OnLeave = Literal["untag", "keep"]


@dataclass(frozen=True, order=True)
class Position:
    """Where a value was written: file, 1-based line and column. Orders by place."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class SecretRef:
    """A reference to a secret: an environment variable, a file's path, or a name under
    ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential``)."""

    kind: Literal["env", "file", "credential"]
    name: str

    def describe(self) -> str:
        """A human-readable, secret-free description, e.g. ``env:OMNISEND_KEY``."""
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class User:
    name: str
    role: Literal["admin", "contributor"]


@dataclass(frozen=True)
class CsvOptions:
    encoding: str = "utf-8"
    delimiter: str = ","


@dataclass(frozen=True)
class Source:
    """Where customer profiles come from. ``path`` for files and SQLite, ``dsn`` for PostgreSQL."""

    name: str
    kind: SourceKind
    path: str | None = None
    dsn: SecretRef | None = None
    csv: CsvOptions = field(default_factory=CsvOptions)


@dataclass(frozen=True)
class Segment:
    """A set of profiles: a SQL ``query`` run inside a database source, or a whole file source."""

    name: str
    source: str
    query: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class RateLimit:
    requests_per_minute: int = 400
    tags_per_minute: int = 60


@dataclass(frozen=True)
class Connection:
    """An Omnisend brand reached with one API key."""

    name: str
    display_name: str
    api_key: SecretRef
    allowed_users: tuple[str, ...] = ()
    data_transfer_accepted: bool = False
    base_url: str = "https://api.omnisend.com/api"
    rate_limit: RateLimit = field(default_factory=RateLimit)
    kind: Literal["omnisend"] = "omnisend"

    @property
    def brand(self) -> str:
        """The brand reached, as the config tells: base URL and key reference (never the key)."""
        return f"{self.base_url.rstrip('/')} {self.api_key.describe()}"


@dataclass(frozen=True)
class Schedule:
    """When an export runs: a cron expression in a time zone, or a fixed interval.
    ``name`` is ``None`` for a schedule inlined in its export."""

    name: str | None
    cron: str | None = None
    timezone: str = "UTC"
    every_seconds: int | None = None
    every_text: str | None = field(default=None, compare=False)  # as written ("15m")

    @property
    def every_written(self) -> str | None:
        """``every`` for people: as the config writes it, else in seconds; ``None`` for cron."""
        if self.every_seconds is None:
            return None
        return self.every_text or f"{self.every_seconds}s"

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron '{self.cron}' ({self.timezone})"
        return f"every {self.every_written}"


@dataclass(frozen=True)
class FieldMapping:
    """Which source column feeds which contact field. ``email`` is required."""

    email: str
    first_name: str | None = None
    last_name: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    country_code: str | None = None
    custom_properties: Mapping[str, str] = field(default_factory=dict)

    def columns(self) -> tuple[str, ...]:
        """Every source column the mapping reads, in a stable order, without repeats."""
        ordered = [getattr(self, name) for name in CONTACT_FIELDS]
        ordered += [self.custom_properties[key] for key in sorted(self.custom_properties)]
        return tuple(dict.fromkeys(column for column in ordered if column is not None))


#: Mapping fields in the order they are fingerprinted and documented.
CONTACT_FIELDS: tuple[str, ...] = tuple(
    mapped.name for mapped in fields(FieldMapping) if mapped.name != "custom_properties"
)


@dataclass(frozen=True)
class Consent:
    """Where a profile's e-mail consent comes from in the source."""

    status_column: str
    changed_at_column: str
    ip_column: str | None = None
    user_agent_column: str | None = None
    source: str = "omnisync"


@dataclass(frozen=True)
class Guards:
    """When a run is held instead of applied (the schema's ``guards``). Shares are
    fractions (``0.2`` for ``20%``); ``None`` turns that guard off."""

    max_removed: float | None = 0.2
    max_changed: float | None = None
    allow_empty: bool = False
    min_members: int = 0


@dataclass(frozen=True)
class Export:
    """One segment delivered to one connection."""

    name: str
    segment: str
    connection: str
    owner: str
    mapping: FieldMapping
    tag: str
    on_leave: OnLeave = "untag"
    consent: Consent | None = None
    send_welcome_message: bool = False
    max_profiles: int | None = None
    schedule: Schedule | None = None
    enabled: bool = True
    guards: Guards = field(default_factory=Guards)

    @property
    def scheduled(self) -> bool:
        """Whether the daemon runs it by itself: enabled, with a schedule."""
        return self.enabled and self.schedule is not None


@dataclass(frozen=True)
class StateSettings:
    """Where the state store lives: SQLite in ``state_dir``, or a shared PostgreSQL
    database (``dsn``) whose replicas hold brands for ``lease_seconds`` at a time."""

    kind: Literal["sqlite", "postgres"] = "sqlite"
    dsn: SecretRef | None = None
    lease_seconds: float = 15.0

    @property
    def shared(self) -> bool:
        """Whether several replicas may share this store (and so hold leases)."""
        return self.kind == "postgres"


@dataclass(frozen=True)
class DaemonSettings:
    """How the daemon runs. ``state_dir`` (resolved) keeps the SQLite store, run locks and
    the control token; ``replica_id`` is ``None`` for the default (``hostname:pid``)."""

    state_dir: str
    state: StateSettings = field(default_factory=StateSettings)
    replica_id: str | None = None
    control_listen: str = "127.0.0.1:9187"
    control_token: SecretRef | None = None
    log_format: LogFormat = "text"
    reload_debounce_seconds: float = 1.0
    guards: Guards = field(default_factory=Guards)


@dataclass(frozen=True)
class Config:
    """A whole, validated configuration. ``positions`` maps dotted paths
    (``exports.vip.mapping.email``) to where they were written."""

    version: int
    users: Mapping[str, User]
    sources: Mapping[str, Source]
    segments: Mapping[str, Segment]
    connections: Mapping[str, Connection]
    schedules: Mapping[str, Schedule]
    exports: Mapping[str, Export]
    daemon: DaemonSettings
    revision: str = ""
    files: tuple[str, ...] = ()
    positions: Mapping[str, Position] = field(default_factory=dict, compare=False, repr=False)

    def brand_of(self, export: str) -> str | None:
        """The brand export ``export`` delivers to (its connection's), ``None`` if unknown."""
        definition = self.exports.get(export)
        connection = self.connections.get(definition.connection) if definition else None
        return connection.brand if connection is not None else None

    def position(self, path: str) -> Position | None:
        """Where ``path`` (dotted) was written, or its nearest written ancestor."""
        while path:
            found = self.positions.get(path)
            if found is not None:
                return found
            path = path.rpartition(".")[0]
        return None

    def position_or_start(self, path: str) -> Position:
        """:meth:`position`, else the start of the first file."""
        return self.position(path) or Position(self.files[0] if self.files else "<config>", 1, 1)
