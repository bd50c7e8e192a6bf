"""Diagnostics: what is wrong with a config, where, and how to show it.

Pure. Every stage of loading (YAML, schema, semantic rules, secrets) speaks in
diagnostics, so all problems are reported at once, sorted by place. Messages
never carry a secret value: stages that see one describe it, never echo it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

from omnisync.config.model import Position
from omnisync.errors import OmnisyncError

#: A path into a document: mapping keys and sequence indices.
PathParts = tuple[str | int, ...]


def dotted(parts: Sequence[str | int]) -> str:
    """``("exports", "vip", "mapping")`` as ``exports.vip.mapping``; the root is ``""``."""
    return ".".join(str(part) for part in parts)


def nearest_position(positions: Mapping[PathParts, Position], path: PathParts) -> Position:
    """Where ``path`` or its nearest ancestor was written; ``positions`` holds the root ``()``."""
    while path and path not in positions:
        path = path[:-1]
    return positions[path]


def did_you_mean(word: str, candidates: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` naming the closest candidate, or ``""`` when none is close."""
    matches = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in a config at a 1-based line and column and a dotted ``path``
    (``""`` for a file as a whole, left out of ``str()``). Orders by place."""

    file: str
    line: int
    column: int
    path: str
    message: str

    @classmethod
    def at(cls, position: Position, path: str | Sequence[str | int], message: str) -> Diagnostic:
        """A diagnostic at ``position``; ``path`` is dotted or given as parts."""
        text = path if isinstance(path, str) else dotted(path)
        return cls(position.file, position.line, position.column, text, message)

    def __str__(self) -> str:
        path = f" {self.path}:" if self.path else ""
        return f"{self.file}:{self.line}:{self.column}:{path} {self.message}"


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    """Sorted by place, exact duplicates removed."""
    return tuple(sorted(set(diagnostics)))


class ConfigInvalid(OmnisyncError):
    """A config that cannot be used; ``diagnostics`` says why, sorted by place."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = sort_diagnostics(diagnostics)
        if not self.diagnostics:
            raise ValueError("ConfigInvalid needs at least one diagnostic")
        shown = "\n".join(str(diagnostic) for diagnostic in self.diagnostics[:20])
        hidden = len(self.diagnostics) - 20
        more = f"\n... and {hidden} more" if hidden > 0 else ""
        super().__init__(f"{summarize(self.diagnostics)}:\n{shown}{more}")


class ConfigUnreadable(ConfigInvalid):
    """The config path does not exist or cannot be read (the CLI exits 2, not 1)."""


def summarize(diagnostics: Sequence[Diagnostic]) -> str:
    """``"3 errors in 2 files"``."""
    files = len({diagnostic.file for diagnostic in diagnostics})
    errors = len(diagnostics)
    return f"{errors} error{'' if errors == 1 else 's'} in {files} file{'' if files == 1 else 's'}"


def render_text(diagnostics: Sequence[Diagnostic]) -> str:
    """One diagnostic a line, ``file:line:col: path: message``."""
    return "".join(f"{diagnostic}\n" for diagnostic in diagnostics)


def render_json(
    diagnostics: Sequence[Diagnostic],
    *,
    valid: bool,
    files: Sequence[str] = (),
    revision: str = "",
    exports: int = 0,
) -> str:
    """A single JSON document for tools: validity, the files read and every diagnostic."""
    document = {
        "valid": valid,
        "files": list(files),
        "revision": revision,
        "exports": exports,
        "summary": summarize(diagnostics) if diagnostics else "",
        "diagnostics": [asdict(diagnostic) for diagnostic in diagnostics],
    }
    return json.dumps(document, indent=2) + "\n"


def render_github(diagnostics: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow commands: ``::error file=…,line=…,col=…::message``."""
    lines = []
    for diagnostic in diagnostics:
        file = escape_property(diagnostic.file)
        where = f"file={file},line={diagnostic.line},col={diagnostic.column}"
        text = f"{diagnostic.path}: {diagnostic.message}" if diagnostic.path else diagnostic.message
        lines.append(f"::error {where},title=omnisync validate::{escape_data(text)}\n")
    return "".join(lines)


def escape_data(text: str) -> str:
    # The escapes the Actions runner decodes in a command's message.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")
