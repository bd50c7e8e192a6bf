"""Several parsed files into one config document.

Pure. A config may be split over a directory of files, each export in its own
file if one likes. The named sections (``users``, ``sources``, ``segments``,
``connections``, ``schedules``, ``exports``) are merged by name; a name
defined twice is an error that names both places. ``version`` must agree
across files and ``daemon`` may be given in only one of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omnisync.config.diagnostics import Diagnostic, PathParts
from omnisync.config.model import Position
from omnisync.config.yamlload import ParsedDocument

#: The sections that map names to entries, in the order they are documented.
NAMED_SECTIONS: tuple[str, ...] = (
    "users",
    "sources",
    "segments",
    "connections",
    "schedules",
    "exports",
)


@dataclass(frozen=True)
class SourceFile:
    """A parsed file and the absolute directory its relative paths are relative to."""

    document: ParsedDocument
    directory: str


@dataclass(frozen=True)
class MergedDocument:
    """The union of several files.

    ``base_dirs`` maps each entry (``("sources", "cdp")``, ``("daemon",)``)
    to the directory of the file that defined it. Of an entry defined more
    than once only the first is kept; ``diagnostics`` names both places.
    """

    data: dict[str, Any]
    positions: Mapping[PathParts, Position]
    base_dirs: Mapping[PathParts, str]
    diagnostics: tuple[Diagnostic, ...]


def merge_documents(files: Sequence[SourceFile]) -> MergedDocument:
    """Merge parsed files in order. Files without data (unparseable) are ignored."""
    data: dict[str, Any] = {}
    positions: dict[PathParts, Position] = {}
    base_dirs: dict[PathParts, str] = {}
    diagnostics: list[Diagnostic] = []
    version_at: Position | None = None

    for source_file in files:
        document = source_file.document
        if document.data is None:
            continue
        positions.setdefault((), document.positions.get((), Position(document.file, 1, 1)))
        by_entry = _index_positions(document.positions)
        for key, value in document.data.items():
            key_position = document.positions.get((key,), Position(document.file, 1, 1))
            if key in NAMED_SECTIONS and isinstance(value, dict):
                section = data.setdefault(key, {})
                if not isinstance(section, dict):
                    continue
                positions.setdefault((key,), key_position)
                for name, entry in value.items():
                    here = document.positions.get((key, name), key_position)
                    first = positions.get((key, name)) if name in section else None
                    if first is not None:
                        diagnostics.append(
                            Diagnostic.at(
                                here,
                                (key, name),
                                f"{key.removesuffix('s')} '{name}' is defined twice:"
                                f" at {first} and at {here}",
                            )
                        )
                        continue
                    section[name] = entry
                    base_dirs[(key, name)] = source_file.directory
                    _copy_positions(by_entry, positions, prefix=(key, name))
            elif key == "version":
                if version_at is None:
                    data[key] = value
                    version_at = key_position
                    positions[(key,)] = key_position
                elif value != data[key]:
                    diagnostics.append(
                        Diagnostic.at(
                            key_position,
                            ("version",),
                            f"version {value} differs from version {data[key]} at {version_at}",
                        )
                    )
            elif key == "daemon":
                if ("daemon",) in positions:
                    first = positions[("daemon",)]
                    diagnostics.append(
                        Diagnostic.at(
                            key_position,
                            ("daemon",),
                            f"daemon settings are given twice: at {first} and at {key_position};"
                            " keep them in one file",
                        )
                    )
                    continue
                data[key] = value
                base_dirs[("daemon",)] = source_file.directory
                _copy_positions(by_entry, positions, prefix=(key,))
            else:
                # Unknown keys and malformed sections: the schema has reported them.
                data.setdefault(key, value)
                _copy_positions(by_entry, positions, prefix=(key,))
    return MergedDocument(data, positions, base_dirs, tuple(diagnostics))


def _index_positions(
    positions: Mapping[PathParts, Position],
) -> dict[PathParts, list[tuple[PathParts, Position]]]:
    """Positions grouped under their first one and first two path parts."""
    index: dict[PathParts, list[tuple[PathParts, Position]]] = {}
    for path, position in positions.items():
        if path:
            index.setdefault(path[:1], []).append((path, position))
        if len(path) >= 2:
            index.setdefault(path[:2], []).append((path, position))
    return index


def _copy_positions(
    index: Mapping[PathParts, list[tuple[PathParts, Position]]],
    target: dict[PathParts, Position],
    *,
    prefix: PathParts,
) -> None:
    for path, position in index.get(prefix, ()):
        target.setdefault(path, position)
