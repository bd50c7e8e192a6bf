"""The JSON Schema: finding it, validating a document, and saying what is wrong.

``schemas/omnisync.schema.json`` (draft 2020-12) is the single source of truth
for the structure of a config. jsonschema finds the errors; this module turns
each into one readable diagnostic at the position of the offending key:
unknown keys get a "did you mean", a failed ``oneOf`` reports only the branch
the author meant (chosen by a discriminating ``kind`` or by the value's type),
and a schema may carry an ``errorMessage`` (the keyword yaml-language-server
also shows) where the generic wording would be cryptic.

Messages never echo a value that could be a secret: values are quoted only
for ``enum`` and ``const`` failures (kinds, roles), never for patterns.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

# jsonschema ships no type information (and types-jsonschema is not a dependency).
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

from omnisync.config.diagnostics import Diagnostic, PathParts, did_you_mean, nearest_position
from omnisync.config.model import Position
from omnisync.config.yamlload import describe_type

SCHEMA_FILE = "omnisync.schema.json"

#: Validators about an object's keys rather than its value: a string
#: ``errorMessage`` does not replace their (more specific) wording.
_STRUCTURAL = frozenset(
    {"required", "additionalProperties", "dependentRequired", "propertyNames", "unevaluated"}
)
_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}
#: Example environment variable names for the plaintext-secret hint.
_SECRET_EXAMPLES = {
    "api_key": "OMNISEND_API_KEY",
    "dsn": "OMNISYNC_POSTGRES_DSN",
    "token": "OMNISYNC_CONTROL_TOKEN",
}


def schema_text() -> str:
    """The schema file's text, from a source checkout or from the installed wheel."""
    checkout = Path(__file__).resolve().parent.parent.parent / "schemas" / SCHEMA_FILE
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    # The wheel carries it inside the package (pyproject's force-include).
    return (resources.files("omnisync") / "schemas" / SCHEMA_FILE).read_text(encoding="utf-8")


@functools.cache
def load_schema() -> Mapping[str, Any]:
    """The parsed schema (cached; treat as read-only)."""
    schema: dict[str, Any] = json.loads(schema_text())
    Draft202012Validator.check_schema(schema)
    return schema


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


@dataclass(frozen=True)
class SchemaReport:
    """The schema's verdict on one document.

    ``problem_paths`` holds the path of every problem, so that later stages
    can drop those values instead of tripping over them.
    """

    diagnostics: tuple[Diagnostic, ...]
    problem_paths: frozenset[PathParts]


def validate_document(
    data: Mapping[str, Any], *, positions: Mapping[PathParts, Position], file: str
) -> SchemaReport:
    """Every schema problem of one document, each at the position of its key."""
    diagnostics = []
    problem_paths: set[PathParts] = set()
    for error in _validator().iter_errors(data):
        for path, message in _explain(error):
            position = nearest_position(positions, path, file=file)
            diagnostics.append(Diagnostic.at(position, path, message))
            problem_paths.add(path)
    return SchemaReport(tuple(diagnostics), frozenset(problem_paths))


def _explain(error: ValidationError) -> Iterator[tuple[PathParts, str]]:
    """(path, message) pairs for one jsonschema error, recursing into ``oneOf`` branches."""
    path: PathParts = tuple(error.absolute_path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    validator = str(error.validator)
    instance = error.instance

    if _is_key_error(error):
        message = _custom(schema, validator) or _generic(error, schema)
        yield (*path, str(instance)), f"'{instance}' is not a valid name here: {message}"
        return
    if validator == "additionalProperties" and isinstance(instance, dict):
        allowed = set(schema.get("properties", {}))
        for key in sorted(set(instance) - allowed):
            yield (*path, key), f"unknown property '{key}'{did_you_mean(key, allowed)}"
        return
    if validator == "required" and isinstance(instance, dict):
        for key in error.validator_value:
            if key not in instance:
                yield path, f"missing required property '{key}'"
        return
    custom = _custom(schema, validator)
    if custom is not None:
        yield path, _with_secret_hint(custom, path)
        return
    if validator in ("oneOf", "anyOf"):
        yield from _explain_branches(error, path)
        return
    yield path, _generic(error, schema)


def _is_key_error(error: ValidationError) -> bool:
    # A propertyNames failure is about a key; jsonschema reports it at the
    # enclosing object with the key as the instance.
    schema_path = list(error.absolute_schema_path)
    if "propertyNames" not in schema_path:
        return False
    last = len(schema_path) - 1 - schema_path[::-1].index("propertyNames")
    return not {"properties", "additionalProperties", "items"} & set(schema_path[last:])


def _explain_branches(error: ValidationError, path: PathParts) -> Iterator[tuple[PathParts, str]]:
    branches = [resolve_reference(branch, load_schema()) for branch in error.validator_value]
    if not error.context:
        yield path, "matches more than one of the allowed forms; make it match exactly one"
        return
    by_branch: dict[int, list[ValidationError]] = defaultdict(list)
    for sub_error in error.context:
        by_branch[int(sub_error.relative_schema_path[0])].append(sub_error)
    instance = error.instance

    discriminator = _discriminator(branches)
    if discriminator is not None and isinstance(instance, dict):
        key, choices = discriminator
        expected = ", ".join(str(choice) for choice in choices)
        if key not in instance:
            yield path, f"missing required property '{key}' (one of: {expected})"
            return
        value = instance[key]
        if not isinstance(value, str) or value not in choices:
            hint = did_you_mean(value, set(choices)) if isinstance(value, str) else ""
            yield (*path, key), f"unknown {key} {_show(value)}; expected one of: {expected}{hint}"
            return
        for sub_error in by_branch[choices[value]]:
            for sub_path, message in _explain(sub_error):
                # "unknown property 'encoding'" alone would puzzle: csv has one.
                suffix = f" for {key} {value}" if message.startswith("unknown property") else ""
                yield sub_path, message + suffix
        return

    # Otherwise the value's type tells which form was meant.
    candidates = [
        index
        for index in range(len(branches))
        if not any(
            sub_error.validator == "type" and not sub_error.path for sub_error in by_branch[index]
        )
    ]
    if not candidates:
        kinds = [branch.get("type") for branch in branches]
        types = dict.fromkeys(_TYPE_NAMES[kind] for kind in kinds if isinstance(kind, str))
        yield path, f"expected {' or '.join(types)}, got {describe_type(instance)}"
        return
    best = min(candidates, key=lambda index: len(by_branch[index]))
    for sub_error in by_branch[best]:
        yield from _explain(sub_error)


def resolve_reference(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` with its ``$ref`` to a definition of ``root`` followed (siblings of
    ``$ref``, such as a property's own ``description``, win)."""
    reference = schema.get("$ref")
    if not isinstance(reference, str) or not reference.startswith("#/$defs/"):
        return schema
    target = root["$defs"][reference.removeprefix("#/$defs/")]
    merged = {**resolve_reference(target, root), **schema}
    merged.pop("$ref")
    return merged


def _discriminator(branches: Sequence[Mapping[str, Any]]) -> tuple[str, dict[str, int]] | None:
    """A property whose ``const`` differs in every branch (``kind``), with const -> branch."""
    if not branches:
        return None
    common: set[str] | None = None
    for branch in branches:
        names = {
            name
            for name, subschema in branch.get("properties", {}).items()
            if isinstance(subschema, dict) and "const" in subschema
        }
        common = names if common is None else common & names
    if not common:
        return None
    key = sorted(common)[0]
    choices = {
        str(branch["properties"][key]["const"]): index for index, branch in enumerate(branches)
    }
    return key, choices


def _custom(schema: Mapping[str, Any], validator: str) -> str | None:
    message = schema.get("errorMessage")
    if isinstance(message, dict):
        found = message.get(validator)
        return str(found) if found is not None else None
    if isinstance(message, str) and validator not in _STRUCTURAL:
        return message
    return None


def _with_secret_hint(message: str, path: PathParts) -> str:
    example = _SECRET_EXAMPLES.get(str(path[-1])) if path else None
    if example is None:
        return message
    return message.replace("{env: NAME}", f"{{env: {example}}}")


def _generic(error: ValidationError, schema: Mapping[str, Any]) -> str:
    validator = str(error.validator)
    value = error.validator_value
    instance = error.instance
    if validator == "type":
        kinds = [value] if isinstance(value, str) else list(value)
        expected = " or ".join(_TYPE_NAMES.get(kind, kind) for kind in kinds)
        return f"expected {expected}, got {describe_type(instance)}"
    if validator == "enum":
        choices = [str(choice) for choice in value]
        hint = did_you_mean(instance, set(choices)) if isinstance(instance, str) else ""
        return f"{_show(instance)} is not one of: {', '.join(choices)}{hint}"
    if validator == "const":
        return f"must be {json.dumps(value)}, not {_show(instance)}"
    if validator == "pattern":
        return f"does not match the pattern {value}"
    if validator == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters"
    if validator == "maxLength":
        return f"must be at most {value} characters, not {len(instance)}"
    if validator == "minimum":
        return f"must be at least {value}"
    if validator == "exclusiveMinimum":
        return f"must be greater than {value}"
    if validator == "maximum":
        return f"must be at most {value}"
    if validator == "maxProperties":
        return f"may have at most {value} entries, not {len(instance)}"
    if validator == "minProperties":
        return f"must have at least {value} entries"
    if validator == "uniqueItems":
        repeated = sorted({str(item) for item in instance if instance.count(item) > 1})
        return f"lists {', '.join(repr(item) for item in repeated)} more than once"
    if validator == "dependentRequired":
        present = [key for key in value if key in instance]
        return f"'{present[0]}' needs {', '.join(repr(key) for key in value[present[0]])}"
    if validator == "None" or error.schema is False:
        return "is not allowed here"
    return f"is not valid ({validator})"


def _show(value: object) -> str:
    """A short, printable string quoted; anything else by its type."""
    if isinstance(value, str) and len(value) <= 60 and value.isprintable():
        return f"'{value}'"
    return describe_type(value)
