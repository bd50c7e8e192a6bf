"""The JSON Schema: finding it, validating a document, and saying what is wrong.

jsonschema finds the errors; each becomes one readable diagnostic at the
position of the offending key: unknown keys get a "did you mean", a failed
``oneOf`` reports only the branch the author meant (chosen by its ``kind`` or
by the value's type), and a schema's ``errorMessage`` (the keyword
yaml-language-server also shows) replaces cryptic generic wording.

Messages never echo a value that could be a secret: values are quoted only
for ``enum`` and ``const`` failures (kinds, roles), never for patterns.
"""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnisync.config.diagnostics import Diagnostic, PathParts, did_you_mean, nearest_position
from omnisync.config.model import Position
from omnisync.config.yamlload import describe_type

# jsonschema (about 50 ms of imports) is imported when a document is first validated:
# `omnisync schema` prints the file and needs none of it. It ships no type information
# (and types-jsonschema is not a dependency).
if TYPE_CHECKING:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
    from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

SCHEMA_FILE = "omnisync.schema.json"

#: Validators about an object's keys rather than its value: a string
#: ``errorMessage`` does not replace their (more specific) wording.
_STRUCTURAL = frozenset({"required", "additionalProperties", "dependentRequired", "propertyNames"})
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
    return schema


@functools.cache
def _validator() -> Draft202012Validator:
    """Draft 2020-12 with ``pattern`` read as ECMA-262 reads it (:func:`_ecma_regex`)."""
    from jsonschema import Draft202012Validator, validators

    return validators.extend(Draft202012Validator, {"pattern": _pattern})(load_schema())


#: A pattern's escapes and character classes (kept as they are), or a ``$`` outside them.
_PATTERN_PARTS = re.compile(r"(\\.|\[(?:\\.|[^\]\\])*\])|\$")


@functools.cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    r"""``pattern`` with its ``$`` read as ECMA-262 reads it (JSON Schema's dialect): a ``$``
    outside a class matches only at the very end, where Python's also matches before a
    final newline (an ``every: |`` block's ``15m`` and its newline, which check-jsonschema
    refuses). Only ``$`` is translated. Python's ``\s`` differs from ECMA's on a few rare
    characters (ECMA's has U+FEFF, Python's U+001C-U+001F and U+0085): the schema's
    patterns that refuse whitespace name those beside ``\s``, so both dialects agree."""
    return re.compile(_PATTERN_PARTS.sub(lambda part: part.group(1) or r"\Z", pattern))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"does not match {pattern!r}")


def validate_document(
    data: Mapping[str, Any], *, positions: Mapping[PathParts, Position]
) -> list[tuple[PathParts, Diagnostic]]:
    """Every schema problem of one document: its path, and a diagnostic at the position of
    its key (``positions`` as :func:`~omnisync.config.yamlload.parse_document` gives them)."""
    return [
        (path, Diagnostic.at(nearest_position(positions, path), path, message))
        for error in _validator().iter_errors(data)
        for path, message in _explain(error)
    ]


def _explain(error: ValidationError) -> Iterator[tuple[PathParts, str]]:
    """(path, message) pairs for one jsonschema error, recursing into ``oneOf`` branches."""
    path: PathParts = tuple(error.absolute_path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    validator = str(error.validator)
    instance = error.instance
    custom = _custom(schema, validator)
    if _is_key_error(error):
        message = custom or _generic(error)
        yield (*path, str(instance)), f"'{instance}' is not a valid name here: {message}"
    elif validator == "additionalProperties" and isinstance(instance, dict):
        allowed = set(schema.get("properties", {}))
        unknown = sorted(set(instance) - allowed, key=str)
        if schema == load_schema()["$defs"]["secret_ref"]:
            # `api_key: {sk-live-…}` is a mapping whose key is the secret: never say it back.
            names = "property" if len(unknown) == 1 else "properties"
            choices = ", ".join(sorted(allowed))
            message = f"unknown {names} (not shown: it may be the secret itself)"
            yield path, f"{message}; use one of: {choices}"
        else:
            for key in unknown:
                yield (*path, key), f"unknown property '{key}'{did_you_mean(key, allowed)}"
    elif validator == "required" and isinstance(instance, dict):
        for key in error.validator_value:
            if key not in instance:
                yield path, f"missing required property '{key}'"
    elif custom is not None:
        yield path, _with_secret_hint(custom, path)
    elif validator in ("oneOf", "anyOf"):
        yield from _explain_branches(error, path)
    else:
        yield path, _generic(error)


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

    choices = _kinds(branches)
    if choices is not None and isinstance(instance, dict):
        expected = ", ".join(choices)
        kind = instance.get("kind")
        if "kind" not in instance:
            yield path, f"missing required property 'kind' (one of: {expected})"
        elif not isinstance(kind, str) or kind not in choices:
            hint = did_you_mean(kind, set(choices)) if isinstance(kind, str) else ""
            yield (*path, "kind"), f"unknown kind {_show(kind)}; expected one of: {expected}{hint}"
        else:
            for sub_error in by_branch[choices[kind]]:
                for sub_path, message in _explain(sub_error):
                    # "unknown property 'encoding'" alone would puzzle: csv has one.
                    suffix = f" for kind {kind}" if message.startswith("unknown property") else ""
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


def _kinds(branches: Sequence[Mapping[str, Any]]) -> dict[str, int] | None:
    """``kind`` -> branch, when every branch fixes its ``kind`` (``const``)."""
    kinds = [branch.get("properties", {}).get("kind", {}).get("const") for branch in branches]
    if not kinds or None in kinds:
        return None
    return {str(kind): index for index, kind in enumerate(kinds)}


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
    return message if example is None else message.replace("{env: NAME}", f"{{env: {example}}}")


#: Messages for the validators whose wording needs only the schema's value (``limit``) and
#: the size of the instance (``size``).
_LIMIT_MESSAGES = {
    "pattern": "does not match the pattern {limit}",
    "maxLength": "must be at most {limit} characters, not {size}",
    "minimum": "must be at least {limit}",
    "exclusiveMinimum": "must be greater than {limit}",
    "maximum": "must be at most {limit}",
    "maxProperties": "may have at most {limit} entries, not {size}",
    "minProperties": "must have at least {limit} entries",
}


#: YAML 1.1's words for true and false, which YAML 1.2 (and so omnisync) reads as text.
_OLD_BOOLS = frozenset({"yes", "no", "y", "n", "on", "off"})


def _generic(error: ValidationError) -> str:
    validator = str(error.validator)
    value = error.validator_value
    instance = error.instance
    if validator in _LIMIT_MESSAGES:
        size = len(instance) if isinstance(instance, str | dict) else 0
        return _LIMIT_MESSAGES[validator].format(limit=value, size=size)
    if validator == "type":
        kinds = [value] if isinstance(value, str) else list(value)
        expected = " or ".join(_TYPE_NAMES.get(kind, kind) for kind in kinds)
        # YAML 1.1's booleans are text in YAML 1.2; the word is from this fixed list, so
        # saying it back can never echo a secret.
        if "boolean" in kinds and isinstance(instance, str) and instance.lower() in _OLD_BOOLS:
            return (
                f"expected true or false, got the text '{instance}'"
                " (YAML 1.2 has no yes/no/on/off booleans)"
            )
        return f"expected {expected}, got {describe_type(instance)}"
    if validator == "enum":
        choices = [str(choice) for choice in value]
        hint = did_you_mean(instance, set(choices)) if isinstance(instance, str) else ""
        return f"{_show(instance)} is not one of: {', '.join(choices)}{hint}"
    if validator == "const":
        return f"must be {json.dumps(value)}, not {_show(instance)}"
    if validator == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters"
    if validator == "uniqueItems":
        repeated = sorted({str(item) for item in instance if instance.count(item) > 1})
        return f"lists {', '.join(repr(item) for item in repeated)} more than once"
    return f"is not valid ({validator})"


def _show(value: object) -> str:
    """A short, printable string quoted; anything else by its type."""
    if isinstance(value, str) and len(value) <= 60 and value.isprintable():
        return f"'{value}'"
    return describe_type(value)
