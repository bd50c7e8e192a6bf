"""Contract checks against Omnisend's published OpenAPI documents (shared test helper).

Loads every ``*.json`` document in ``tests/openapi/`` (verbatim copies; never
edit them) and checks requests and responses against them:

    from tests.openapi_contract import validate_request, validate_response, ValidatingTransport

    validate_request("POST", "/batches", body)                   # parsed JSON body
    validate_response("GET", "/batches/abc/items", 200, body)    # concrete path
    client = httpx.Client(transport=ValidatingTransport())       # checks every exchange

Paths may be concrete (``/batches/abc/items``) and may carry the ``/api`` base
path of the documents' ``servers`` URL and a query string; they are matched to
the document's path templates (literal segments win over ``{parameters}``).
Every ``$ref`` is resolved, and schemas are checked with
``openapi-schema-validator``'s OAS 3.0 validators (the *write* flavour for
requests, so read-only fields are refused; the *read* flavour for responses).

Strictness (``strict=True``, the default): objects that declare ``properties``
and say nothing about ``additionalProperties`` accept no other property, so a
misspelt field (``sendWelcomeMessages``) fails instead of passing silently.
``customProperties`` and other free-form maps declare
``additionalProperties: true`` and stay open.

Error statuses a document does not list for an operation (the batches
document lists no 401, 410 or 429) are still checked: 400 as a
``ValidationProblem``, 429 as a ``RateLimitProblem``, any other 4xx/5xx as a
``Problem`` — every Omnisend error is an RFC 9457 problem. An undeclared
success status is a contract violation.

Every failure raises ``AssertionError`` with a readable message naming the
operation, the JSON path of the offending value and the reason.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator

OPENAPI_DIRECTORY = Path(__file__).parent / "openapi"

_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


@dataclass(frozen=True)
class Operation:
    """One (method, path template) of one OpenAPI document, with ``$ref``s resolved."""

    method: str
    template: str
    document: str
    spec: Mapping[str, Any]
    components: Mapping[str, Any]
    pattern: re.Pattern[str]
    literal_segments: int

    @property
    def name(self) -> str:
        return f"{self.method.upper()} {self.template} ({self.document})"


def _resolve(node: Any, root: Mapping[str, Any], *, strict: bool, depth: int = 0) -> Any:
    """Return ``node`` with every local ``$ref`` replaced by a copy of its target."""
    if depth > 64:
        raise ValueError("OpenAPI $ref nesting too deep (recursive schema?)")
    if isinstance(node, list):
        return [_resolve(item, root, strict=strict, depth=depth + 1) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        reference = node["$ref"]
        if not reference.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {reference!r}")
        target: Any = root
        for part in reference[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        resolved = _resolve(copy.deepcopy(target), root, strict=strict, depth=depth + 1)
        return {**resolved, **siblings} if siblings else resolved
    resolved_node = {
        key: _resolve(value, root, strict=strict, depth=depth + 1) for key, value in node.items()
    }
    if strict and "properties" in resolved_node and "additionalProperties" not in resolved_node:
        resolved_node["additionalProperties"] = False
    return resolved_node


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = [
        "[^/]+" if segment.startswith("{") and segment.endswith("}") else re.escape(segment)
        for segment in template.strip("/").split("/")
    ]
    return re.compile("^/" + "/".join(parts) + "$")


@cache
def _operations(strict: bool) -> tuple[Operation, ...]:
    operations: list[Operation] = []
    for document_path in sorted(OPENAPI_DIRECTORY.glob("*.json")):
        document = json.loads(document_path.read_text(encoding="utf-8"))
        resolved = _resolve(document, document, strict=strict)
        for template, path_item in resolved.get("paths", {}).items():
            shared_parameters = path_item.get("parameters", [])
            for method, method_spec in path_item.items():
                if method not in _METHODS:
                    continue
                spec = {
                    **method_spec,
                    "parameters": [*shared_parameters, *method_spec.get("parameters", [])],
                }
                operations.append(
                    Operation(
                        method=method,
                        template=template,
                        document=document_path.name,
                        spec=spec,
                        components=resolved.get("components", {}),
                        pattern=_template_pattern(template),
                        literal_segments=sum(
                            not segment.startswith("{") for segment in template.split("/")
                        ),
                    )
                )
    return tuple(operations)


@cache
def _base_paths() -> tuple[str, ...]:
    bases = set()
    for document_path in OPENAPI_DIRECTORY.glob("*.json"):
        document = json.loads(document_path.read_text(encoding="utf-8"))
        for server in document.get("servers", []):
            base = urlsplit(server["url"]).path.rstrip("/")
            if base:
                bases.add(base)
    return tuple(sorted(bases, key=len, reverse=True))


def _split(path: str) -> tuple[str, dict[str, str]]:
    """Strip scheme/host, query and the servers' base path; return (path, query)."""
    parts = urlsplit(path)
    clean = parts.path or "/"
    for base in _base_paths():
        if clean == base or clean.startswith(base + "/"):
            clean = clean[len(base) :] or "/"
            break
    return clean, dict(parse_qsl(parts.query, keep_blank_values=True))


def _candidates(path: str) -> list[Operation]:
    return sorted(
        (operation for operation in _operations(True) if operation.pattern.match(path)),
        key=lambda operation: -operation.literal_segments,
    )


def find_operation(method: str, path: str, *, strict: bool = True) -> Operation:
    """Return the documented operation for ``method`` on a concrete ``path``.

    Raises ``AssertionError`` when no document has the path, or has it but not
    for this method.
    """
    clean, _ = _split(path)
    matching_templates = [operation.template for operation in _candidates(clean)]
    if not matching_templates:
        raise AssertionError(f"{method.upper()} {path}: no OpenAPI path template matches {clean}")
    best_template = matching_templates[0]
    by_method = [
        operation
        for operation in _operations(strict)
        if operation.template in matching_templates and operation.method == method.lower()
    ]
    if not by_method:
        raise AssertionError(
            f"{method.upper()} {path}: {best_template} is documented, but not for {method.upper()}"
        )
    by_method.sort(key=lambda operation: -operation.literal_segments)
    return by_method[0]


def _errors(validator: Any, instance: Any) -> Iterator[str]:
    for error in sorted(validator.iter_errors(instance), key=lambda error: list(error.path)):
        location = "$" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.path
        )
        yield f"  at {location}: {error.message}"


def _check(schema: Mapping[str, Any], instance: Any, *, validator_class: Any, what: str) -> None:
    messages = list(_errors(validator_class(schema), instance))
    if messages:
        shown = json.dumps(instance, ensure_ascii=False, default=str)
        if len(shown) > 600:
            shown = shown[:600] + "..."
        raise AssertionError(
            f"{what} violates the OpenAPI contract:\n" + "\n".join(messages) + f"\n  body: {shown}"
        )


def _json_schema(content: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not content:
        return None
    media = content.get("application/json") or next(iter(content.values()))
    return media.get("schema") if isinstance(media, Mapping) else None


def validate_request(
    method: str,
    path: str,
    body: Any = None,
    *,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    strict: bool = True,
) -> None:
    """Check one request against the documents; raise ``AssertionError`` if it breaks them.

    ``body`` is the parsed JSON body (``None`` for none). Query parameters come
    from ``query`` and from a query string in ``path``; each documented query
    parameter is checked against its schema and required ones must be present.
    When ``headers`` is given, required header parameters (``Omnisend-Version``)
    and the ``Authorization`` header must be present.
    """
    operation = find_operation(method, path, strict=strict)
    what = f"request {operation.name}"
    _, path_query = _split(path)
    all_query = {**path_query, **(query or {})}
    lowered_headers = {key.lower(): value for key, value in (headers or {}).items()}
    for parameter in operation.spec.get("parameters", []):
        location, name = parameter.get("in"), parameter["name"]
        schema = parameter.get("schema", {})
        if location == "query":
            if name not in all_query:
                if parameter.get("required"):
                    raise AssertionError(f"{what}: required query parameter {name!r} is missing")
                continue
            value: Any = all_query[name]
            if schema.get("type") == "integer":
                try:
                    value = int(value)
                except ValueError:
                    raise AssertionError(
                        f"{what}: query parameter {name}={all_query[name]!r} is not an integer"
                    ) from None
            _check(schema, value, validator_class=OAS30WriteValidator, what=f"{what} query {name}")
        elif (
            location == "header"
            and headers is not None
            and parameter.get("required")
            and name.lower() not in lowered_headers
        ):
            raise AssertionError(f"{what}: required header {name!r} is missing")
    if headers is not None and "authorization" not in lowered_headers:
        raise AssertionError(f"{what}: the Authorization header is missing")
    request_body = operation.spec.get("requestBody")
    if request_body is None:
        if body is not None:
            raise AssertionError(f"{what}: the operation takes no body, but one was sent")
        return
    if body is None:
        if request_body.get("required"):
            raise AssertionError(f"{what}: a JSON body is required, none was sent")
        return
    schema = _json_schema(request_body.get("content"))
    if schema is not None:
        _check(schema, body, validator_class=OAS30WriteValidator, what=what)


def _fallback_schema(operation: Operation | None, status: int) -> Mapping[str, Any]:
    """The problem schema an undeclared error status must still satisfy."""
    name = {400: "ValidationProblem", 429: "RateLimitProblem"}.get(status, "Problem")
    preferred = [operation] if operation is not None else []
    for candidate in [*preferred, *_operations(True)]:
        schemas: Mapping[str, Mapping[str, Any]] = candidate.components.get("schemas", {})
        if name in schemas:
            return schemas[name]
    raise AssertionError(f"no {name} schema in the OpenAPI documents")


def validate_response(
    method: str, path: str, status: int, body: Any = None, *, strict: bool = True
) -> None:
    """Check one response against the documents; raise ``AssertionError`` if it breaks them.

    ``body`` is the parsed JSON body (``None`` for an empty body). An error
    status on a path no document has (a 404 for an unknown path) is checked as
    a ``Problem``; a success status there is a violation.
    """
    try:
        operation: Operation | None = find_operation(method, path, strict=strict)
    except AssertionError:
        if status < 400:
            raise
        operation = None
    what = f"response {status} to {operation.name if operation else method.upper() + ' ' + path}"
    responses = operation.spec.get("responses", {}) if operation else {}
    declared = responses.get(str(status))
    if declared is None:
        if status < 400:
            raise AssertionError(
                f"{what}: status {status} is not documented (documented: {sorted(responses)})"
            )
        schema: Mapping[str, Any] | None = _fallback_schema(operation, status)
    else:
        schema = _json_schema(declared.get("content"))
    if schema is None:
        return
    if body is None:
        raise AssertionError(f"{what}: a JSON body is documented, but the body is empty")
    _check(schema, body, validator_class=OAS30ReadValidator, what=what)


def _parse_json(content: bytes, *, what: str) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError as error:
        raise AssertionError(f"{what}: body is not JSON ({error}): {content[:200]!r}") from None


class ValidatingTransport(httpx.BaseTransport):
    """An httpx transport that checks every request and response against the documents.

    Wraps ``transport`` (default: a plain ``httpx.HTTPTransport``). A request
    that breaks the contract raises ``AssertionError`` before it is sent; a
    response that breaks it raises after it is read. ``validate_requests=False``
    lets a test send deliberately bad requests while still checking the
    responses. ``exchanges`` counts the validated round trips, so a test can
    prove the check ran.
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        validate_requests: bool = True,
        validate_responses: bool = True,
        strict: bool = True,
    ) -> None:
        self._transport = transport or httpx.HTTPTransport()
        self._validate_requests = validate_requests
        self._validate_responses = validate_responses
        self._strict = strict
        self.exchanges = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        method, target = request.method, str(request.url.raw_path, "ascii")
        if self._validate_requests:
            body = _parse_json(request.read(), what=f"request {method} {target}")
            validate_request(
                method, target, body, headers=dict(request.headers), strict=self._strict
            )
        response = self._transport.handle_request(request)
        if self._validate_responses:
            content = response.read()
            body = _parse_json(
                content, what=f"response {response.status_code} to {method} {target}"
            )
            validate_response(method, target, response.status_code, body, strict=self._strict)
        self.exchanges += 1
        return response

    def close(self) -> None:
        self._transport.close()
