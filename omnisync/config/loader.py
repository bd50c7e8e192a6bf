"""Loading a config: files to a validated, frozen :class:`~omnisync.config.model.Config`.

The shell around the pure stages. It reads the file, or every ``*.yaml`` and
``*.yml`` file of a directory (sorted by name; hidden files and editor
backups such as ``x.yaml~`` and ``.#x.yaml`` are ignored; subdirectories are
not read), then runs YAML parsing, the schema, merging, building and the
semantic rules, and reports every problem of every stage at once, sorted.

Apart from reading the files (and asking git for the revision) loading is a
pure function of the files' bytes and ``environ``, so the daemon reuses it
for hot reload. Secrets are not resolved here (see
:mod:`omnisync.config.secrets`).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from omnisync.config.build import build_config
from omnisync.config.diagnostics import (
    ConfigInvalid,
    ConfigUnreadable,
    Diagnostic,
    PathParts,
    sort_diagnostics,
)
from omnisync.config.merge import SourceFile, merge_documents
from omnisync.config.model import Config, Position
from omnisync.config.revision import LoadedFile, config_revision
from omnisync.config.rules import check_config
from omnisync.config.schema import validate_document
from omnisync.config.yamlload import MAX_FILE_BYTES, parse_document

CONFIG_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadResult:
    """Either a config or the reasons there is none; never both.

    ``unreadable`` is true when the path (or a file in it) could not be read
    at all, which the CLI reports with exit status 2 rather than 1.
    """

    config: Config | None
    diagnostics: tuple[Diagnostic, ...]
    files: tuple[str, ...] = ()
    unreadable: bool = False
    #: The revision of the files read, valid or not (``""`` when they could not be read):
    #: a rejected config is named by it too.
    revision: str = ""

    def unwrap(self) -> Config:
        """The config, or raise :class:`ConfigUnreadable` / :class:`ConfigInvalid`."""
        if self.config is not None:
            return self.config
        if self.unreadable:
            raise ConfigUnreadable(self.diagnostics)
        raise ConfigInvalid(self.diagnostics)


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Config:
    """Load and validate the config at ``path`` (a file or a directory).

    ``environ`` (default ``os.environ``) supplies the defaults that depend on
    it, such as the state directory. Raises :class:`ConfigInvalid` (or its
    subclass :class:`ConfigUnreadable`) with every diagnostic, sorted.
    """
    return try_load_config(path, environ=environ).unwrap()


def try_load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> LoadResult:
    """Like :func:`load_config`, but returns the outcome instead of raising."""
    environment = os.environ if environ is None else environ
    display = os.fspath(path)
    found = _discover(display)
    if isinstance(found, LoadResult):
        return found
    names, root = found
    loaded: list[LoadedFile] = []
    for name in names:
        content = _read(name)
        if isinstance(content, Diagnostic):
            return LoadResult(None, (content,), tuple(names), unreadable=True)
        loaded.append(LoadedFile(name=name, path=os.path.abspath(name), content=content))

    diagnostics: list[Diagnostic] = []
    source_files = []
    problem_paths: set[PathParts] = set()
    for loaded_file in loaded:
        document = parse_document(loaded_file.content, file=loaded_file.name)
        diagnostics.extend(document.diagnostics)
        if document.data is not None:
            report = validate_document(
                document.data, positions=document.positions, file=loaded_file.name
            )
            diagnostics.extend(_not_already_reported(report.diagnostics, document.diagnostics))
            problem_paths.update(report.problem_paths)
        source_files.append(SourceFile(document, os.path.dirname(loaded_file.path)))

    merged = merge_documents(source_files)
    diagnostics.extend(merged.diagnostics)
    home = environment.get("HOME") or os.path.expanduser("~")
    built = build_config(
        merged.data,
        positions=merged.positions,
        base_dirs=merged.base_dirs,
        environ=environment,
        home=home,
        files=tuple(names),
        problems=frozenset(problem_paths),
    )
    diagnostics.extend(built.diagnostics)
    diagnostics.extend(check_config(built.config, skipped=built.skipped, flawed=built.flawed))
    revision = config_revision(loaded, root=root)
    if diagnostics:
        return LoadResult(None, sort_diagnostics(diagnostics), tuple(names), revision=revision)
    config = dataclasses.replace(built.config, revision=revision)
    return LoadResult(config, (), tuple(names), revision=revision)


def _not_already_reported(
    diagnostics: tuple[Diagnostic, ...], reported: tuple[Diagnostic, ...]
) -> list[Diagnostic]:
    """``diagnostics`` except those at or under a path YAML parsing already complained
    about: a rejected ``!!python/object`` need not also be "not a string"."""
    prefixes = {diagnostic.path for diagnostic in reported if diagnostic.path}
    return [
        diagnostic
        for diagnostic in diagnostics
        if not any(
            diagnostic.path == prefix or diagnostic.path.startswith(prefix + ".")
            for prefix in prefixes
        )
    ]


def config_file_names(directory: str) -> list[str]:
    """The config files of ``directory``, sorted: ``*.yaml``/``*.yml`` regular files,
    not hidden, not editor backups. Raises ``OSError`` if it cannot be listed."""
    names = []
    for entry in sorted(os.listdir(directory)):
        if entry.startswith((".", "#")) or entry.endswith("~"):
            continue
        if not entry.endswith(CONFIG_SUFFIXES):
            continue
        full = os.path.join(directory, entry)
        if os.path.isfile(full):
            names.append(full)
    return names


def _discover(display: str) -> tuple[list[str], str] | LoadResult:
    """The files to read and the directory git should look at, or why there are none."""
    try:
        mode = os.stat(display).st_mode
    except OSError as error:
        return _unreadable(display, _reason(error))
    if stat.S_ISDIR(mode):
        try:
            names = config_file_names(display)
        except OSError as error:
            return _unreadable(display, _reason(error))
        if not names:
            diagnostic = Diagnostic.at(
                Position(display, 1, 1), "", "no *.yaml or *.yml files in this directory"
            )
            return LoadResult(None, (diagnostic,))
        return names, os.path.abspath(display)
    if not stat.S_ISREG(mode):
        return _unreadable(display, "not a regular file or a directory")
    return [display], os.path.dirname(os.path.abspath(display))


def _read(name: str) -> bytes | Diagnostic:
    try:
        with open(name, "rb") as handle:
            # One byte more than allowed, so the parser can tell the file is too big.
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        return Diagnostic.at(Position(name, 1, 1), "", f"cannot read: {_reason(error)}")


def _unreadable(display: str, reason: str) -> LoadResult:
    diagnostic = Diagnostic.at(Position(display, 1, 1), "", f"cannot read: {reason}")
    return LoadResult(None, (diagnostic,), unreadable=True)


def _reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower().rstrip(".")
