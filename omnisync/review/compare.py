"""Config objects as dotted fields, compared field by field. Pure.

Each object becomes a flat ``{dotted field: text}`` mapping: nested settings
are dotted (``mapping.first_name``, ``rate_limit.tags_per_minute``), lists
are joined, absent values are left out, and a secret is shown only as its
reference (``env:OMNISEND_API_KEY``), never resolved. ``relocate`` rewrites
path values of a config read from a temporary checkout of a git revision
back to where the working tree holds them, so that a path is not reported as
changed only because the two sides were read from different directories.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from omnisync.config.model import Config, Schedule, SecretRef
from omnisync.review.model import KINDS, FieldChange, Kind

Relocate = Callable[[str], str]


def same(text: str) -> str:
    """The identity :data:`Relocate`: a side read where it lives."""
    return text


def flatten(value: object, *, relocate: Relocate = same) -> dict[str, str]:
    """``value`` (a config object) as ``{dotted field: text}``; its ``name`` is left out."""
    if isinstance(value, Schedule):
        # A schedule of its own (under ``schedules``): its settings as written.
        return _schedule(value)
    return dict(_fields(value, "", relocate))


def _schedule(schedule: Schedule) -> dict[str, str]:
    written = {"cron": schedule.cron, "timezone": schedule.timezone, "every": _every(schedule)}
    return {key: text for key, text in written.items() if text is not None}


def _every(schedule: Schedule) -> str | None:
    if schedule.every_seconds is None:
        return None
    return schedule.every_text or f"{schedule.every_seconds}s"


def _fields(value: object, prefix: str, relocate: Relocate) -> Iterator[tuple[str, str]]:
    if value is None:
        return
    if isinstance(value, SecretRef):
        name = relocate(value.name) if value.kind == "file" else value.name
        yield prefix, f"{{{value.kind}: {name}}}"
    elif isinstance(value, Schedule):
        if value.name is not None:
            yield prefix, value.name  # a named schedule: its own changes are reported there
        else:
            for key, text in _schedule(value).items():
                yield _join(prefix, key), text
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            if item.name == "name" or not item.compare:
                continue
            yield from _fields(getattr(value, item.name), _join(prefix, item.name), relocate)
    elif isinstance(value, Mapping):
        for key in sorted(value):
            yield from _fields(value[key], _join(prefix, str(key)), relocate)
    elif isinstance(value, tuple | list):
        yield prefix, ", ".join(str(item) for item in value)
    elif isinstance(value, bool):
        yield prefix, "true" if value else "false"
    elif isinstance(value, str):
        yield prefix, relocate(value)
    else:
        yield prefix, str(value)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def field_changes(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[FieldChange, ...]:
    """The fields that differ, in dotted order."""
    return tuple(
        FieldChange(path, before.get(path), after.get(path))
        for path in sorted(set(before) | set(after))
        if before.get(path) != after.get(path)
    )


def objects(config: Config, kind: Kind) -> Mapping[str, Any]:
    """The objects of ``kind`` in ``config`` by name; the daemon section is named ``""``."""
    if kind == "daemon":
        return {"": config.daemon}
    section = dict(KINDS)[kind]
    found: Mapping[str, Any] = getattr(config, section)
    return found


def daemon_fields(config: Config, *, relocate: Relocate = same) -> dict[str, str]:
    """The daemon section's fields, as written (``control.listen``, not the attribute name)."""
    settings = flatten(config.daemon, relocate=relocate)
    renamed = {
        "control_listen": "control.listen",
        "control_token": "control.token",
        "reload_debounce_seconds": "reload_debounce",
    }
    return {renamed.get(key, key): value for key, value in settings.items()}
