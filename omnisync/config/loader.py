"""Loading a config: files to a validated, frozen :class:`~omnisync.config.model.Config`.

The shell around the pure stages: it reads the file, or the directory's
:func:`config_file_names`, runs YAML parsing, the schema, merging, building and
the semantic rules, and reports every problem of every stage at once, sorted.
Apart from reading the files (and asking git for the revision) loading is a
pure function of the files' bytes and ``environ``. Secrets are not resolved.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omnisync.config.build import build_config, home_directory
from omnisync.config.diagnostics import (
    ConfigInvalid,
    ConfigUnreadable,
    Diagnostic,
    PathParts,
    sort_diagnostics,
)
from omnisync.config.model import Config, Position
from omnisync.config.revision import LoadedFile, config_revision
from omnisync.config.schema import validate_document
from omnisync.config.yamlload import MAX_FILE_BYTES, ParsedDocument, parse_document

#: The sections that map names to entries, merged across files by name.
NAMED_SECTIONS = frozenset({"users", "sources", "segments", "connections", "schedules", "exports"})


@dataclass(frozen=True)
class LoadResult:
    """Either a config or the reasons there is none; never both. ``unreadable``: the path
    (or a file in it) could not be read (the CLI exits 2, not 1). ``revision`` names the
    files read, valid or not (``""`` when they could not be read)."""

    config: Config | None
    diagnostics: tuple[Diagnostic, ...]
    files: tuple[str, ...] = ()
    unreadable: bool = False
    revision: str = ""

    def unwrap(self) -> Config:
        """The config, or raise :class:`ConfigUnreadable` / :class:`ConfigInvalid`."""
        if self.config is not None:
            return self.config
        if self.unreadable:
            raise ConfigUnreadable(self.diagnostics)
        raise ConfigInvalid(self.diagnostics)


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str]) -> Config:
    """Load and validate the config at ``path`` (a file or a directory); ``environ``
    supplies the defaults that depend on it. Raises :class:`ConfigInvalid` (or its
    subclass :class:`ConfigUnreadable`)."""
    return try_load_config(path, environ=environ).unwrap()


def try_load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str]) -> LoadResult:
    """Like :func:`load_config`, but returns the outcome instead of raising."""
    display = os.fspath(path)
    names: list[str] = []
    try:
        names, root = _discover(display)
        loaded = [_read(name) for name in names]
    except _Unreadable as error:
        return LoadResult(None, error.args, tuple(names), unreadable=True)
    if not names:
        diagnostic = Diagnostic.at(
            Position(display, 1, 1), "", "no *.yaml or *.yml files in this directory"
        )
        return LoadResult(None, (diagnostic,))

    diagnostics: list[Diagnostic] = []
    documents = []
    problems: set[PathParts] = set()
    for loaded_file in loaded:
        document = parse_document(loaded_file.content, file=loaded_file.name)
        diagnostics.extend(document.diagnostics)
        # A value YAML parsing refused (a !!python/object) need not also be "not a string".
        refused = tuple(f"{found.path}." for found in document.diagnostics if found.path)
        if document.data is not None:
            for parts, diagnostic in validate_document(document.data, positions=document.positions):
                problems.add(parts)
                if not f"{diagnostic.path}.".startswith(refused):
                    diagnostics.append(diagnostic)
        documents.append((document, os.path.dirname(loaded_file.path)))

    merged = merge_documents(documents)
    revision = config_revision(loaded, root=root)
    config, problems_found = build_config(
        merged.data,
        positions=merged.positions,
        base_dirs=merged.base_dirs,
        environ=environ,
        home=home_directory(environ),
        files=tuple(names),
        revision=revision,
        problems=frozenset(problems),
    )
    diagnostics += [*merged.diagnostics, *problems_found]
    return LoadResult(
        None if diagnostics else config,
        sort_diagnostics(diagnostics),
        tuple(names),
        revision=revision,
    )


@dataclass(frozen=True)
class MergedDocument:
    """The union of several files. ``base_dirs`` maps each entry (``("sources", "cdp")``,
    ``("daemon",)``) to the directory of the file that defined it."""

    data: dict[str, Any]
    positions: Mapping[PathParts, Position]
    base_dirs: Mapping[PathParts, str]
    diagnostics: tuple[Diagnostic, ...]


def merge_documents(files: Sequence[tuple[ParsedDocument, str]]) -> MergedDocument:
    """Merge parsed files, each with the absolute directory its relative paths are
    relative to, in order; files without data (unparseable) are ignored.

    :data:`NAMED_SECTIONS` are merged by name; of an entry defined twice only the first
    is kept and a diagnostic names both places. ``version`` must agree across files and
    ``daemon`` may be given in only one of them.
    """
    data: dict[str, Any] = {}
    positions: dict[PathParts, Position] = {}
    base_dirs: dict[PathParts, str] = {}
    diagnostics: list[Diagnostic] = []

    for document, directory in files:
        if document.data is None:
            continue
        start = document.positions[()]
        positions.setdefault((), start)
        # The entries (key, name) and sections (key,) this file contributes.
        taken: set[PathParts] = set()
        for key, value in document.data.items():
            here = document.positions.get((key,), start)
            if key in NAMED_SECTIONS:
                if not isinstance(value, dict):
                    continue  # the schema reported it; the other files' entries still merge
                section = data.setdefault(key, {})
                positions.setdefault((key,), here)
                for name, entry in value.items():
                    at = document.positions.get((key, name), here)
                    if name in section:
                        first = positions.get((key, name), at)
                        twice = f"{key.removesuffix('s')} '{name}' is defined twice"
                        message = f"{twice}: at {first} and at {at}"
                        diagnostics.append(Diagnostic.at(at, (key, name), message))
                        continue
                    section[name] = entry
                    base_dirs[(key, name)] = directory
                    taken.add((key, name))
            elif key in data:
                first = positions[(key,)]
                if key == "daemon":
                    message = (
                        f"daemon settings are given twice: at {first} and at {here};"
                        " keep them in one file"
                    )
                elif key == "version" and value != data[key]:
                    message = f"version {value} differs from version {data[key]} at {first}"
                else:
                    continue  # an unknown key or a malformed section: the schema reported it
                diagnostics.append(Diagnostic.at(here, (key,), message))
            else:
                data[key] = value
                base_dirs[(key,)] = directory
                taken.add((key,))
        for path, position in document.positions.items():
            if path[:1] in taken or path[:2] in taken:
                positions.setdefault(path, position)
    return MergedDocument(data, positions, base_dirs, tuple(diagnostics))


def config_file_names(directory: str) -> list[str]:
    """The config files of ``directory``, sorted: ``*.yaml``/``*.yml`` regular files (or
    links to them), not hidden, not editor backups, and also the names that cannot be
    followed (a dangling link), so that reading them says why. Raises ``OSError`` if the
    directory cannot be listed."""
    names = [
        os.path.join(directory, entry)
        for entry in sorted(os.listdir(directory))
        if is_config_file_name(entry)
    ]
    # Skipping a dangling link would drop its exports without a word.
    return [name for name in names if os.path.isfile(name) or not os.path.exists(name)]


def is_config_file_name(entry: str) -> bool:
    """Whether a directory's entry named ``entry`` is read as config: ``*.yaml``/``*.yml``,
    not hidden, not an editor backup (``omnisync diff`` lists a revision's files by it)."""
    return entry.endswith((".yaml", ".yml")) and not entry.startswith((".", "#"))


class _Unreadable(Exception):
    """``where`` cannot be read; its one argument is the diagnostic saying why."""

    def __init__(self, where: str, reason: str | OSError) -> None:
        if isinstance(reason, OSError):
            reason = (reason.strerror or str(reason)).lower().rstrip(".")
        super().__init__(Diagnostic.at(Position(where, 1, 1), "", f"cannot read: {reason}"))


def _discover(display: str) -> tuple[list[str], str]:
    """The files to read and the directory git should look at."""
    try:
        mode = os.stat(display).st_mode
        if stat.S_ISDIR(mode):
            return config_file_names(display), os.path.abspath(display)
    except OSError as error:
        raise _Unreadable(display, error) from None
    if not stat.S_ISREG(mode):
        raise _Unreadable(display, "not a regular file or a directory")
    return [display], os.path.dirname(os.path.abspath(display))


def _read(name: str) -> LoadedFile:
    try:
        with open(name, "rb") as handle:
            # One byte more than allowed, so the parser can tell the file is too big.
            content = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise _Unreadable(name, error) from None
    return LoadedFile(name=name, path=os.path.abspath(name), content=content)
