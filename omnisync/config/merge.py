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

#: The sections that map names to entries.
NAMED_SECTIONS = frozenset({"users", "sources", "segments", "connections", "schedules", "exports"})


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


def merge_documents(files: Sequence[tuple[ParsedDocument, str]]) -> MergedDocument:
    """Merge parsed files, each with the absolute directory its relative paths are
    relative to, in order. Files without data (unparseable) are ignored."""
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
            if key in NAMED_SECTIONS and isinstance(value, dict):
                section = data.setdefault(key, {})
                if not isinstance(section, dict):
                    continue
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
