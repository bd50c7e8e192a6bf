"""Semantic rules: what the schema cannot say about a config (docs/configuration.md,
"Rules beyond the schema", lists them). Pure.

:func:`export_permission_problems` is also what the engine asks before every
run, so ``validate`` and the daemon agree on who may run what.
"""

from __future__ import annotations

import codecs
import functools
import ipaddress
import itertools
import re
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from omnisync.config.cron import cron_problem, timezone_problem
from omnisync.config.diagnostics import Diagnostic, PathParts, did_you_mean, dotted
from omnisync.config.model import Config, Export, Position, Schedule

_DATABASE_KINDS = frozenset({"sqlite", "postgres"})
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$")


def export_permission_problems(config: Config, export_name: str) -> tuple[str, ...]:
    """Why ``export_name`` may not run under ``config``; empty when it may: the owner must
    exist and be an admin or in the connection's ``allowed_users``, the connection must
    exist and have ``data_transfer_accepted``. Whether it is enabled is not checked."""
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
    """Why Omnisend would not accept ``tag`` (it lists tags comma-separated), or ``None``.
    Its length (1 to 100 characters) is the schema's to check."""
    if tag != tag.strip():
        return "a tag must not start or end with whitespace"
    if "," in tag:
        return "a tag must not contain a comma"
    if _CONTROL_CHARACTERS.search(tag):
        return "a tag must not contain control characters (tabs, line breaks, ...)"
    return None


def check_config(config: Config, *, flawed: AbstractSet[PathParts]) -> tuple[Diagnostic, ...]:
    """Every semantic problem of ``config``, each at the position it concerns. ``flawed``
    holds the paths already reported (their values dropped): rules about a path at or
    under one are not run, and a reference to an entry with a flaw (perhaps not built), or
    into a flawed section, is not unknown."""
    checker = _Checker(config, flawed)
    return tuple(
        Diagnostic.at(checker.position(path), path, message)
        for path, message in checker.findings()
        if message is not None
    )


#: A path and what is wrong there (``None``: nothing).
_Finding = tuple[PathParts, str | None]


@dataclass(frozen=True)
class _Checker:
    config: Config
    flawed_paths: AbstractSet[PathParts]

    def flawed(self, path: PathParts) -> bool:
        return any(flawed[: len(path)] == path for flawed in self.flawed_paths)

    def position(self, path: PathParts) -> Position:
        return self.config.position_or_start(dotted(path))

    def unknown(self, section: str, name: str) -> str | None:
        """Why ``name`` is not an entry of ``section``, or ``None`` (also when flawed)."""
        known = getattr(self.config, section)
        if name in known or (section,) in self.flawed_paths or self.flawed((section, name)):
            return None
        return f"there is no {section.removesuffix('s')} '{name}'{did_you_mean(name, set(known))}"

    def findings(self) -> Iterator[_Finding]:
        yield from self._segments()
        for name, source in self.config.sources.items():
            if source.kind == "csv":
                yield ("sources", name, "encoding"), _encoding_problem(source.csv.encoding)
        for name, connection in self.config.connections.items():
            for index, user in enumerate(connection.allowed_users):
                yield ("connections", name, "allowed_users", index), self.unknown("users", user)
            yield ("connections", name, "base_url"), _url_problem(connection.base_url)
        for name, schedule in self.config.schedules.items():
            yield from _schedule_findings(schedule, ("schedules", name))
        yield from self._exports()
        if not self.flawed(("daemon", "control")):
            daemon = self.config.daemon
            has_token = daemon.control_token is not None
            problem = listen_problem(daemon.control_listen, has_token=has_token)
            yield ("daemon", "control", "listen"), problem

    def _segments(self) -> Iterator[_Finding]:
        for name, segment in self.config.segments.items():
            path: PathParts = ("segments", name)
            unknown = self.unknown("sources", segment.source)
            source = self.config.sources.get(segment.source)
            if unknown is not None or source is None or self.flawed((*path, "query")):
                yield (*path, "source"), unknown
            elif source.kind in _DATABASE_KINDS and segment.query is None:
                yield path, f"a segment of a {source.kind} source needs a 'query' (a SQL SELECT)"
            elif source.kind not in _DATABASE_KINDS and segment.query is not None:
                yield (
                    (*path, "query"),
                    f"a {source.kind} source takes no query: every row of the file is a member",
                )
            elif segment.query is not None:
                dialect: SqlDialect = "postgres" if source.kind == "postgres" else "sqlite"
                yield (*path, "query"), select_problem(segment.query, dialect=dialect)

    def _exports(self) -> Iterator[_Finding]:
        tag_owners: dict[tuple[str, str], str] = {}
        ordered = sorted(
            self.config.exports.values(),
            key=lambda export: (self.position(("exports", export.name)), export.name),
        )
        for export in ordered:
            path: PathParts = ("exports", export.name)
            yield (*path, "segment"), self.unknown("segments", export.segment)
            yield (*path, "connection"), self.unknown("connections", export.connection)
            yield (*path, "owner"), self.unknown("users", export.owner)
            schedule = export.schedule
            if schedule is not None and not self.flawed((*path, "schedule")):
                if schedule.name is not None:
                    yield (*path, "schedule"), self.unknown("schedules", schedule.name)
                else:
                    yield from _schedule_findings(schedule, (*path, "schedule"))
            # A connection with a reported problem may have lost its allowed_users or
            # data_transfer_accepted to defaults: judging permissions on those would mislead.
            if not self.flawed(("connections", export.connection)):
                for field, message in _permission_findings(self.config, export):
                    yield (*path, field), message
            if self.flawed((*path, "tag")):
                continue
            problem = tag_problem(export.tag)
            if problem is not None:
                yield (*path, "tag"), problem
                continue
            first = tag_owners.setdefault((export.connection, export.tag.casefold()), export.name)
            if first != export.name:
                first_at = self.position(("exports", first, "tag"))
                same_file = first_at.file == self.position((*path, "tag")).file
                where = f"line {first_at.line}, column {first_at.column}" if same_file else first_at
                yield (
                    (*path, "tag"),
                    f"tag '{export.tag}' on connection '{export.connection}' is already managed"
                    f" by export '{first}' ({where}); give one of them another tag",
                )


def _schedule_findings(schedule: Schedule, path: PathParts) -> Iterator[_Finding]:
    if schedule.cron is not None:
        problem = cron_problem(schedule.cron)
        yield (*path, "cron"), None if problem is None else f"invalid cron expression: {problem}"
        yield (*path, "timezone"), timezone_problem(schedule.timezone)


def _encoding_problem(encoding: str) -> str | None:
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        return f"unknown text encoding '{encoding}'"
    # lookup() also finds bytes-to-bytes and str-to-str codecs (base64, zlib, rot13), which
    # cannot read a file as text: open() refuses them.
    if not codec._is_text_encoding:
        return f"'{encoding}' is not a text encoding (such as utf-8 or cp1252)"
    return None


def _permission_findings(config: Config, export: Export) -> Iterator[tuple[str, str]]:
    """(field, message) for each permission ``export`` lacks; a missing owner or
    connection is left to the unknown-reference rules."""
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


#: How a database source reads a query's text: in PostgreSQL ``$$ ... $$`` is a string, block
#: comments nest and ``E'...'`` takes backslash escapes; in SQLite ``$`` starts a parameter's
#: name and ``[...]`` and backticks quote names.
SqlDialect = Literal["sqlite", "postgres"]
#: A piece of a query where it starts: ``noise`` (blanks, comments), ``quoted`` (a string or
#: a quoted name, an unterminated one to the end), ``text`` (a word or name, ``$`` and any
#: non-ASCII letter in it, else one character such as ``(`` or ``;``); ``nested`` opens a
#: PostgreSQL comment, found by :func:`_nested_comment_end`.
_SQL_PIECES = {
    "sqlite": (
        r"""(?P<noise>\s+|--[^\n]*|/\*.*?(?:\*/|\Z))
        |(?P<quoted>'(?:[^']|'')*'?|"(?:[^"]|"")*"?|`(?:[^`]|``)*`?|\[[^\]]*\]?)
        |(?P<text>[\w$\x80-\U0010ffff]+|.)""",
        re.DOTALL | re.VERBOSE,
    ),
    "postgres": (
        r"""(?P<noise>\s+|--[^\n]*)|(?P<nested>/\*)
        |(?P<quoted>[eE]'(?:[^'\\]|\\.|'')*'?|'(?:[^']|'')*'?|"(?:[^"]|"")*"?
            |(?P<dollar>\$(?:[A-Za-z_\x80-\U0010ffff][\w\x80-\U0010ffff]*)?\$).*?(?:(?P=dollar)|\Z))
        |(?P<text>[\w$\x80-\U0010ffff]+|.)""",
        re.DOTALL | re.VERBOSE,
    ),
}


@functools.cache
def _sql_pattern(dialect: SqlDialect) -> re.Pattern[str]:
    """:data:`_SQL_PIECES` compiled, once a query of ``dialect`` is read: their character
    ranges take milliseconds to compile, and most configs read one dialect or none."""
    source, flags = _SQL_PIECES[dialect]
    return re.compile(source, flags)


_COMMENT_MARKS = re.compile(r"/\*|\*/")


def sql_pieces(query: str, *, dialect: SqlDialect) -> Iterator[tuple[str, int, int]]:
    """``(kind, start, end)`` of each piece of ``query`` in order, read as ``dialect`` reads
    it; the kinds are ``noise``, ``quoted`` and ``text`` (:data:`_SQL_PIECES`)."""
    pattern = _sql_pattern(dialect)
    position = 0
    while position < len(query):
        piece = pattern.match(query, position)
        # The last alternative takes any character; the kind is the outermost group's name.
        assert piece is not None and piece.lastgroup is not None
        start, kind, position = position, piece.lastgroup, piece.end()
        if kind == "nested":
            kind, position = "noise", _nested_comment_end(query, start)
        yield kind, start, position


def _nested_comment_end(query: str, start: int) -> int:
    """Where the PostgreSQL comment opening at ``start`` ends (each ``/*`` in it needs its
    own ``*/``), or the end of ``query``."""
    depth = 0
    for mark in _COMMENT_MARKS.finditer(query, start):
        depth += 1 if mark[0] == "/*" else -1
        if depth == 0:
            return mark.end()
    return len(query)


def select_problem(query: str, *, dialect: SqlDialect) -> str | None:
    """Why ``query``, read as ``dialect`` reads it, is not a single SELECT statement
    (``WITH ... SELECT`` counts) that can sit inside the ``FROM ( ... )`` omnisync wraps it
    in, or ``None``. Its parentheses must balance outside strings, quoted names and
    comments, or it could close the wrapper and run a query beside it. The one rule for
    ``validate`` and for a run: the sources ask it before they run a query (the PostgreSQL
    reader without naming its dialect, hence the default)."""
    # Where each piece that is not blank or a comment starts: a quoted one is never "(".
    pieces = [
        (start, query[start:end])
        for kind, start, end in sql_pieces(query, dialect=dialect)
        if kind != "noise"
    ]
    if not pieces:
        return "the query is empty"
    first = pieces[0][1]
    if first.lower() not in ("select", "with"):
        return f"the query must be a SELECT statement, not {first.upper()}"
    texts = [";"] + [text for _, text in pieces]
    if sum(text != ";" and before == ";" for before, text in itertools.pairwise(texts)) > 1:
        return "the query must be a single statement (it has more than one ';'-separated part)"
    opened: list[int] = []
    for start, text in pieces:
        if text == "(":
            opened.append(start)
        elif text == ")" and not opened:
            return f"the ')' at {_place(query, start)} closes a parenthesis it did not open"
        elif text == ")":
            opened.pop()
    if opened:
        return f"the '(' at {_place(query, opened[-1])} is never closed"
    return None


def _place(query: str, index: int) -> str:
    """Where ``index`` is in ``query``, in words (lines and columns count from 1)."""
    line = query.count("\n", 0, index) + 1
    column = index - query.rfind("\n", 0, index)
    return f"line {line}, column {column} of the query"


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
    """Why the control endpoint may not listen on ``listen`` (``host:port``), or ``None``:
    the one rule for ``daemon.control.listen`` and ``omnisync daemon --control-listen``. An
    address beyond loopback needs ``daemon.control.token``."""
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
