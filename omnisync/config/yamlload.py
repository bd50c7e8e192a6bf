"""YAML to plain data, keeping where every value was written.

PyYAML's safe loader composes the nodes (their marks are the positions); the data
is built from them here, not by PyYAML's constructor, because what YAML lets through
silently must be errors: duplicate keys, input not UTF-8, non-standard tags
(``!!python/object``), keys that are not scalars, and aliases that expand into huge
or recursive documents (values are counted while composing and while expanding).

Plain scalars are read by YAML 1.2, as check-jsonschema reads them
(:mod:`omnisync.config.yamlscalars`); a document that declares another YAML version is
refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.error import Mark, MarkedYAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from omnisync.config.diagnostics import Diagnostic, PathParts
from omnisync.config.model import Position
from omnisync.config.yamlscalars import (
    ADVICE,
    CONSTRUCTORS,
    MAP,
    MERGE,
    PLAIN_VALUE_PROBLEM,
    SCALAR_TAGS,
    SEQ,
    TAG_PREFIX,
    TEXT_TAGS,
    VALUE,
    plain_tag,
)

MAX_FILE_BYTES = 1024 * 1024
#: Values in one document, counted again for every alias expansion.
MAX_NODES = 100_000
MAX_DEPTH = 64


@dataclass(frozen=True)
class ParsedDocument:
    """One YAML file as data. ``data`` is ``None`` unless the top level is a mapping."""

    data: dict[str, Any] | None
    positions: Mapping[PathParts, Position]
    diagnostics: tuple[Diagnostic, ...]


class _Refused(Exception):
    """The input is refused (its arguments: why, and the :class:`Mark` where): a limit is
    exceeded, or the file asks for what omnisync does not do."""


class _AliasNode(Node):
    """An alias occurrence (PyYAML gives the anchored node itself), kept for its position."""

    def __init__(self, target: Node, anchor: str, start_mark: Mark, end_mark: Mark) -> None:
        super().__init__(target.tag, target, start_mark, end_mark)
        self.target = target
        self.anchor = anchor


class _Loader(yaml.SafeLoader):
    """The safe loader, with alias positions, a node budget, a depth limit, and plain
    scalars resolved by YAML 1.2."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.node_count = 0
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        self.node_count += 1
        if self.node_count > MAX_NODES:
            raise _Refused(f"more than {MAX_NODES} values in one file", event.start_mark)
        is_alias = isinstance(event, yaml.AliasEvent)  # a bool: `event` stays Any for mypy
        if is_alias:
            super().compose_node(parent, index)  # raises for an undefined alias
            target = self.anchors[event.anchor]
            return _AliasNode(target, str(event.anchor), event.start_mark, event.end_mark)
        if self.depth >= MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        # No need to unwind on an error: it ends the parse.
        self.depth += 1
        node = super().compose_node(parent, index)
        self.depth -= 1
        return node

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """A node's tag; a plain scalar's by its YAML 1.2 form (:func:`plain_tag`)."""
        if kind is ScalarNode and implicit[0]:
            return plain_tag(value)
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]

    def scan_directive(self) -> Any:
        """A directive; ``%YAML`` of another version than 1.2 is refused."""
        # Another version would read other scalars (check-jsonschema reads "%YAML 1.1"
        # files by YAML 1.1): refused, so that the file says one thing to both.
        token: Any = super().scan_directive()
        if token.name == "YAML" and token.value != (1, 2):
            major, minor = token.value
            raise _Refused(
                f"this file declares %YAML {major}.{minor}; omnisync reads config files as"
                " YAML 1.2 (yes and on are text, 010 is ten): remove the directive",
                token.start_mark,
            )
        return token


def parse_document(content: bytes, *, file: str) -> ParsedDocument:
    """Parse one YAML file's bytes; ``file`` is the name diagnostics carry.

    Never raises for bad input: every problem becomes a diagnostic. A file
    that cannot be read as YAML at all yields one diagnostic and no data.
    """
    start = Position(file, 1, 1)

    def failed(position: Position, message: str) -> ParsedDocument:
        return ParsedDocument(None, {}, (Diagnostic.at(position, "", message),))

    if len(content) > MAX_FILE_BYTES:
        return failed(start, "file is larger than 1 MiB; refusing to read it")
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        return failed(start, "file is UTF-16 (byte-order mark); save it as UTF-8")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        return failed(
            _position_after(content[: error.start].decode("utf-8", "replace"), file=file),
            f"not valid UTF-8: byte 0x{content[error.start]:02x} at offset {error.start}",
        )
    # A UTF-8 byte-order mark is legal, if pointless; PyYAML would keep it.
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return failed(start, "file is empty")

    walker = _Walker(file)
    try:
        root = _Loader(text).get_single_node()
        if root is None:
            return failed(start, "file has no YAML document, only comments")
        data = walker.value(root, (), depth=0)
    except ReaderError as error:
        # The text is decoded already: PyYAML's reader refuses only a character, by its code.
        return failed(
            _position_after(text[: error.position], file=file),
            f"character U+{error.character:04X} is not allowed in YAML",
        )
    except MarkedYAMLError as error:
        return failed(_mark_position(error.problem_mark, file=file), _yaml_message(error))
    except _Refused as error:
        message, mark = error.args
        return failed(_mark_position(mark, file=file), message)
    walker.positions[()] = start
    if not isinstance(data, dict):
        walker.problem(
            root.start_mark,
            (),
            "the top level must be a mapping of sections (version, users, sources, ...),"
            f" not {describe_type(data)}",
        )
        data = None
    return ParsedDocument(data, walker.positions, tuple(walker.diagnostics))


_TYPE_WORDS = (
    (type(None), "null"),
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "a list"),
    (dict, "a mapping"),
)


def describe_type(value: object) -> str:
    """The JSON name of ``value``'s type with an article: ``a string``, ``null``."""
    return next((word for kind, word in _TYPE_WORDS if isinstance(value, kind)), "a value")


class _Walker:
    """Builds plain data from composed nodes, recording positions and problems."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[PathParts, Position] = {}
        self.diagnostics: list[Diagnostic] = []
        self._count = 0
        self._active: set[int] = set()
        self._outer_alias: _AliasNode | None = None

    def value(self, node: Node, path: PathParts, *, depth: int) -> Any:
        self._count += 1
        if self._count > MAX_NODES:
            alias = self._outer_alias
            raise _Refused(
                f"alias{f' *{alias.anchor}' if alias else ''} expands the document past"
                f" {MAX_NODES} values (an alias bomb?); refusing to expand it",
                (alias or node).start_mark,
            )
        if depth > 2 * MAX_DEPTH:
            raise _Refused(f"aliases nest deeper than {2 * MAX_DEPTH} levels", node.start_mark)
        if isinstance(node, _AliasNode):
            return self._alias(node, path, depth=depth)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if node.tag != (SEQ if isinstance(node, SequenceNode) else MAP):
            self.problem(node.start_mark, path, _unsupported_tag(node.tag))
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return self._sequence(node, path, depth=depth)
            assert isinstance(node, MappingNode)
            return self._mapping(node, path, depth=depth)
        finally:
            self._active.discard(id(node))

    def _alias(self, node: _AliasNode, path: PathParts, *, depth: int) -> Any:
        if id(node.target) in self._active:
            raise _Refused(
                f"alias *{node.anchor} refers to a node that contains it", node.start_mark
            )
        outer = self._outer_alias
        self._outer_alias = outer or node  # the outermost alias is blamed for a bomb
        try:
            return self.value(node.target, path, depth=depth + 1)
        finally:
            self._outer_alias = outer

    def _scalar(self, node: ScalarNode, path: PathParts, mark: Mark | None = None) -> Any:
        """The value of ``node``; ``None`` after reporting it at ``mark`` (default: its own)."""
        mark = mark or node.start_mark
        if node.tag in TEXT_TAGS:
            return str(node.value)
        if node.tag == VALUE and node.value == "=":
            self.problem(mark, path, PLAIN_VALUE_PROBLEM)
            return None
        construct = CONSTRUCTORS.get(node.tag)
        if construct is None:
            self.problem(mark, path, _unsupported_tag(node.tag))
            return None
        try:
            return construct(str(node.value))
        except ValueError:
            advice = ADVICE.get(node.tag, "")
            self.problem(mark, path, f"this value is not a valid {_short_tag(node.tag)}{advice}")
            return None

    def _sequence(self, node: SequenceNode, path: PathParts, *, depth: int) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            self.positions[(*path, index)] = self._position(item.start_mark)
            items.append(self.value(item, (*path, index), depth=depth + 1))
        return items

    def _mapping(self, node: MappingNode, path: PathParts, *, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        # Merge keys (<<: *defaults) give values that explicit keys override,
        # wherever in the mapping the explicit keys are written.
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                for source in self._merge_sources(value_node, path):
                    merged = self.value(source, path, depth=depth + 1)
                    for key, value in merged.items():
                        result.setdefault(key, value)
        explicit: dict[str, Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in explicit:
                first = self._position(explicit[key])
                again = self._position(key_node.start_mark)
                self.problem(
                    key_node.start_mark,
                    (*path, key),
                    f"duplicate key '{key}': first at line {first.line}, column {first.column},"
                    f" again at line {again.line}, column {again.column}",
                )
                continue
            explicit[key] = key_node.start_mark
            self.positions[(*path, key)] = self._position(key_node.start_mark)
            result[key] = self.value(value_node, (*path, key), depth=depth + 1)
        return result

    def _merge_sources(self, node: Node, path: PathParts) -> Iterator[Node]:
        target = _target(node)
        if isinstance(target, MappingNode):
            yield node
        elif isinstance(target, SequenceNode):
            for item in target.value:
                if isinstance(_target(item), MappingNode):
                    yield item
                else:
                    self.problem(item.start_mark, path, "'<<' merges only mappings")
        else:
            self.problem(node.start_mark, path, "'<<' needs a mapping or a list of mappings")

    def _key(self, node: Node, path: PathParts) -> str | None:
        """The name a key gives, as written; ``None`` after reporting a key that is not text.

        A key that YAML 1.2 reads as a number, true/false or null is refused, not kept as
        written: check-jsonschema names it by str() of that value (``true:`` is 'True',
        ``010:`` is '10', ``1e3:`` is '1000.0'), so the two would check different names.
        """
        target = _target(node)
        if not isinstance(target, ScalarNode):
            self.problem(node.start_mark, path, "a key must be a plain name, not a list or mapping")
            return None
        if target.tag in SCALAR_TAGS:
            # Keys are names, never secrets: showing the text written is safe.
            self.problem(
                node.start_mark,
                path,
                f"a name written as a number or true/false/null: quote it ('{target.value}')",
            )
            return None
        # `yes:` or `1:30:` names something called "yes" or "1:30" (text in YAML 1.2).
        key = self._scalar(target, path, node.start_mark)
        return key if isinstance(key, str) else None

    def problem(self, mark: Mark, path: PathParts, message: str) -> None:
        self.diagnostics.append(Diagnostic.at(self._position(mark), path, message))

    def _position(self, mark: Mark) -> Position:
        return _mark_position(mark, file=self.file)


def _target(node: Node) -> Node:
    return node.target if isinstance(node, _AliasNode) else node


def _mark_position(mark: Mark | None, *, file: str) -> Position:
    if mark is None:
        return Position(file, 1, 1)
    return Position(file, mark.line + 1, mark.column + 1)


def _position_after(text: str, *, file: str) -> Position:
    """Where the character after ``text``, the start of a file, is."""
    return Position(file, text.count("\n") + 1, len(text) - text.rfind("\n"))


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(TAG_PREFIX) if tag.startswith(TAG_PREFIX) else tag


def _unsupported_tag(tag: str) -> str:
    return (
        f"YAML tag '{_short_tag(tag)}' is not allowed;"
        " use plain strings, numbers, booleans, lists and mappings"
    )


def _yaml_message(error: MarkedYAMLError) -> str:
    if error.context == "expected a single document in the stream":
        return "a config file holds one YAML document, but a second one starts here"
    context = error.context or ""
    if context and error.context_mark is not None:
        mark = error.context_mark
        context += f" that starts at line {mark.line + 1}, column {mark.column + 1}"
    return f"invalid YAML: {error.problem or 'invalid YAML'}" + (f" ({context})" if context else "")
