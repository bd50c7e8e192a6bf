"""Semantic rules: what the schema cannot say about a config.

Pure. After the schema has checked the shape, these rules check meaning:
every reference resolves (segment, source, connection, schedule, owner,
allowed user); an export's owner may use its connection (admins always,
contributors when listed) and the connection has accepted the data-transfer
terms; segments of database sources have a single SELECT and file sources
none; tags are ones Omnisend accepts and no two exports manage the same tag
on one connection; cron expressions, time zones, encodings, URLs and the
control address are valid.

:func:`export_permission_problems` is also what the engine asks before every
run, so ``validate`` and the daemon agree on who may run what.
"""

from __future__ import annotations

import codecs
import ipaddress
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from omnisync.config.cron import cron_problem, timezone_problem
from omnisync.config.diagnostics import (
    Diagnostic,
    PathParts,
    describe_position,
    did_you_mean,
    dotted,
)
from omnisync.config.model import Config, Export, Position, Schedule

_DATABASE_KINDS = frozenset({"sqlite", "postgres"})
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$")


def export_permission_problems(config: Config, export_name: str) -> tuple[str, ...]:
    """Why ``export_name`` may not run under ``config``; empty when it may.

    Checks that the owner exists and is an admin or listed in the
    connection's ``allowed_users``, and that the connection exists and has
    ``data_transfer_accepted``. Whether the export is enabled is not checked.
    """
    export = config.exports.get(export_name)
    if export is None:
        return (f"there is no export '{export_name}'",)
    missing = []
    if export.owner not in config.users:
        missing.append(f"owner '{export.owner}' is not a user")
    if export.connection not in config.connections:
        missing.append(f"connection '{export.connection}' does not exist")
    return (*missing, *(message for _, message in _permission_findings(config, export)))


def tag_problem(tag: str) -> str | None:
    """Why Omnisend would not accept ``tag``, or ``None``.

    A tag is 1 to 100 characters with no commas (Omnisend lists tags
    comma-separated), no control characters and no leading or trailing
    whitespace.
    """
    if not tag:
        return "a tag must not be empty"
    if len(tag) > 100:
        return f"a tag is at most 100 characters, not {len(tag)}"
    if tag != tag.strip():
        return "a tag must not start or end with whitespace"
    if "," in tag:
        return "a tag must not contain a comma"
    if _CONTROL_CHARACTERS.search(tag):
        return "a tag must not contain control characters (tabs, line breaks, ...)"
    return None


def check_config(
    config: Config,
    *,
    skipped: frozenset[PathParts] = frozenset(),
    flawed: frozenset[PathParts] = frozenset(),
) -> tuple[Diagnostic, ...]:
    """Every semantic problem of ``config``, each at the position it concerns.

    ``skipped`` names entries (``("exports", "vip")``) or sections
    (``("users",)``) that exist but could not be built: references to them are
    not reported as unknown, since the author did define them. ``flawed``
    names paths already reported (by the schema) whose values were replaced by
    defaults: rules about them would judge the defaults, so they are not run.
    """
    return tuple(_Checker(config, skipped, flawed).run())


class _Checker:
    def __init__(
        self, config: Config, skipped: frozenset[PathParts], flawed: frozenset[PathParts]
    ) -> None:
        self.config = config
        self.skipped = skipped
        self.flawed_paths = flawed

    def flawed(self, path: PathParts) -> bool:
        """Whether a problem was already reported at or under ``path``."""
        size = len(path)
        return any(flawed[:size] == path for flawed in self.flawed_paths)

    def run(self) -> Iterator[Diagnostic]:
        yield from self._segments()
        yield from self._sources()
        yield from self._connections()
        for name, schedule in self.config.schedules.items():
            yield from self._schedule(schedule, ("schedules", name))
        yield from self._exports()
        yield from self._daemon()

    def position(self, path: PathParts) -> Position:
        return self.config.position_or_start(dotted(path))

    def at(self, path: PathParts, message: str) -> Diagnostic:
        return Diagnostic.at(self.position(path), path, message)

    def exists(self, section: str, name: str) -> bool:
        known = getattr(self.config, section)
        return name in known or (section,) in self.skipped or (section, name) in self.skipped

    def unknown(self, section: str, name: str) -> str:
        known = set(getattr(self.config, section))
        return f"there is no {section.removesuffix('s')} '{name}'{did_you_mean(name, known)}"

    def _sources(self) -> Iterator[Diagnostic]:
        for name, source in self.config.sources.items():
            if source.kind == "csv":
                try:
                    codecs.lookup(source.csv.encoding)
                except LookupError:
                    yield self.at(
                        ("sources", name, "encoding"),
                        f"unknown text encoding '{source.csv.encoding}'",
                    )

    def _segments(self) -> Iterator[Diagnostic]:
        for name, segment in self.config.segments.items():
            path: PathParts = ("segments", name)
            if not self.exists("sources", segment.source):
                yield self.at((*path, "source"), self.unknown("sources", segment.source))
                continue
            source = self.config.sources.get(segment.source)
            if source is None:
                continue
            if self.flawed((*path, "query")):
                continue
            if source.kind in _DATABASE_KINDS and segment.query is None:
                yield self.at(
                    path, f"a segment of a {source.kind} source needs a 'query' (a SQL SELECT)"
                )
            elif source.kind not in _DATABASE_KINDS and segment.query is not None:
                yield self.at(
                    (*path, "query"),
                    f"a {source.kind} source takes no query: every row of the file is a member",
                )
            elif segment.query is not None:
                problem = select_problem(segment.query)
                if problem is not None:
                    yield self.at((*path, "query"), problem)

    def _connections(self) -> Iterator[Diagnostic]:
        for name, connection in self.config.connections.items():
            path: PathParts = ("connections", name)
            for index, user in enumerate(connection.allowed_users):
                if not self.exists("users", user):
                    yield self.at((*path, "allowed_users", index), self.unknown("users", user))
            problem = _url_problem(connection.base_url)
            if problem is not None:
                yield self.at((*path, "base_url"), problem)

    def _schedule(self, schedule: Schedule, path: PathParts) -> Iterator[Diagnostic]:
        if schedule.cron is not None:
            problem = cron_problem(schedule.cron)
            if problem is not None:
                yield self.at((*path, "cron"), f"invalid cron expression: {problem}")
            problem = timezone_problem(schedule.timezone)
            if problem is not None:
                yield self.at((*path, "timezone"), problem)

    def _exports(self) -> Iterator[Diagnostic]:
        tag_owners: dict[tuple[str, str], str] = {}
        ordered = sorted(
            self.config.exports.values(),
            key=lambda export: (self.position(("exports", export.name)), export.name),
        )
        for export in ordered:
            path: PathParts = ("exports", export.name)
            for section, field in (("segments", "segment"), ("connections", "connection")):
                name = getattr(export, field)
                if not self.exists(section, name):
                    yield self.at((*path, field), self.unknown(section, name))
            if not self.exists("users", export.owner):
                yield self.at((*path, "owner"), self.unknown("users", export.owner))
            schedule = export.schedule
            if self.flawed((*path, "schedule")):
                pass
            elif schedule is not None and schedule.name is not None:
                if not self.exists("schedules", schedule.name):
                    yield self.at((*path, "schedule"), self.unknown("schedules", schedule.name))
            elif schedule is not None:
                yield from self._schedule(schedule, (*path, "schedule"))
            # A connection with a reported problem may have lost its allowed_users or
            # data_transfer_accepted to defaults: judging permissions on those would mislead.
            if not self.flawed(("connections", export.connection)):
                for field, message in _permission_findings(self.config, export):
                    yield self.at((*path, field), message)
            if self.flawed((*path, "tag")):
                continue
            problem = tag_problem(export.tag)
            if problem is not None:
                yield self.at((*path, "tag"), problem)
                continue
            key = (export.connection, export.tag.casefold())
            first = tag_owners.setdefault(key, export.name)
            if first != export.name:
                where = describe_position(
                    self.position(("exports", first, "tag")),
                    seen_from=self.position((*path, "tag")),
                )
                yield self.at(
                    (*path, "tag"),
                    f"tag '{export.tag}' on connection '{export.connection}' is already managed"
                    f" by export '{first}' ({where}); give one of them another tag",
                )

    def _daemon(self) -> Iterator[Diagnostic]:
        if self.flawed(("daemon", "control")):
            return
        daemon = self.config.daemon
        problem = listen_problem(daemon.control_listen, has_token=daemon.control_token is not None)
        if problem is not None:
            yield self.at(("daemon", "control", "listen"), problem)


def _permission_findings(config: Config, export: Export) -> Iterator[tuple[str, str]]:
    """(field, message) for each permission ``export`` lacks, judged on the owner and the
    connection that exist (a missing one is reported as an unknown reference)."""
    owner = config.users.get(export.owner)
    connection = config.connections.get(export.connection)
    if connection is None:
        return
    if not connection.data_transfer_accepted:
        yield (
            "connection",
            f"connection '{connection.name}' has not accepted the data-transfer terms;"
            " an admin must set data_transfer_accepted: true before any export may use it",
        )
    if owner is not None and owner.role != "admin" and owner.name not in connection.allowed_users:
        yield (
            "owner",
            f"user '{owner.name}' is a contributor and not in allowed_users of connection"
            f" '{connection.name}'; an admin must add them, or own the export",
        )


def select_problem(query: str) -> str | None:
    """Why ``query`` is not a single SELECT statement (``WITH ... SELECT`` counts), or ``None``."""
    code = _strip_sql(query)
    words = code.split(None, 1)
    if not words:
        return "the query is empty"
    first = words[0].lower()
    if first not in ("select", "with"):
        return f"the query must be a SELECT statement, not {first.upper()}"
    statements = [part for part in code.split(";") if part.strip()]
    if len(statements) > 1:
        return "the query must be a single statement (it has more than one ';'-separated part)"
    return None


def _strip_sql(query: str) -> str:
    """``query`` with comments removed and string literals blanked, so ``;`` inside them is
    ignored."""
    kept: list[str] = []
    index = 0
    length = len(query)
    while index < length:
        character = query[index]
        if query.startswith("--", index):
            end = query.find("\n", index)
            index = length if end == -1 else end
        elif query.startswith("/*", index):
            end = query.find("*/", index + 2)
            index = length if end == -1 else end + 2
            kept.append(" ")
        elif character in ("'", '"'):
            end = index + 1
            while end < length:
                if query[end] == character:
                    if query.startswith(character * 2, end):
                        end += 2
                        continue
                    break
                end += 1
            kept.append(character + character)
            index = end + 1
        else:
            kept.append(character)
            index += 1
    return "".join(kept)


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as error:
        return f"not a valid URL: {error}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "must not contain credentials; the API key is given by api_key"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    return None


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as (host, port); raises ValueError saying why not."""
    host, colon, port_text = listen.rpartition(":")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"port must be a number from 0 to 65535, not '{port_text}'")
    if not colon or not host:
        raise ValueError(f"'{listen}' is not host:port")
    return (host[1:-1] if host.startswith("[") and host.endswith("]") else host), int(port_text)


def listen_problem(listen: str, *, has_token: bool) -> str | None:
    """Why the control endpoint may not listen on ``listen`` (``host:port``), or ``None``.

    The one rule for every way an address is given (``daemon.control.listen``,
    ``omnisync daemon --control-listen``): an address beyond loopback
    (``0.0.0.0``, ``[::]``, a LAN address, a host name other than
    ``localhost``) needs a configured ``daemon.control.token``.
    """
    try:
        host, _ = split_listen(listen)
    except ValueError as problem:
        return str(problem)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        if not _HOSTNAME.match(host):
            return f"'{host}' is neither an IP address nor a host name"
        loopback = host.lower() in ("localhost", "localhost.")
    if not loopback and not has_token:
        return (
            f"listening on '{host}' exposes the control endpoint beyond this machine;"
            " set daemon.control.token, or listen on 127.0.0.1"
        )
    return None
