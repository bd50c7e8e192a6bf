"""Config objects as dotted fields, to be compared field by field. Pure.

Nested settings are dotted (``mapping.first_name``), lists joined, absent
values left out, and a secret shown only as its reference, never resolved.
``relocate`` maps the paths of a config read from a temporary checkout back
to the working tree, so that a path does not differ only for that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping

from omnisync.config.model import DaemonSettings, Schedule, SecretRef

Relocate = Callable[[str], str]


def same(text: str) -> str:
    return text


#: Daemon settings whose attribute is not the name the config writes.
_DAEMON_NAMES = {
    "control_listen": "control.listen",
    "control_token": "control.token",
    "reload_debounce_seconds": "reload_debounce",
}


def flatten(value: object, *, relocate: Relocate = same) -> dict[str, str]:
    """``value`` (a config object) as ``{dotted field: text}`` as the config writes the
    fields; its ``name`` is left out."""
    fields = dict(_fields(value, "", relocate))
    if isinstance(value, DaemonSettings):
        return {_DAEMON_NAMES.get(key, key): text for key, text in fields.items()}
    return fields


def _fields(value: object, prefix: str, relocate: Relocate) -> Iterator[tuple[str, str]]:
    if value is None:
        return
    if isinstance(value, SecretRef):
        name = relocate(value.name) if value.kind == "file" else value.name
        yield prefix, f"{{{value.kind}: {name}}}"
    elif isinstance(value, Schedule) and value.name is not None and prefix:
        yield prefix, value.name  # a named schedule: its own changes are reported there
    elif isinstance(value, Schedule):
        # Its settings as written, whether inlined in an export or under ``schedules``; a
        # time zone only for a cron (an interval has none, whatever the model defaults to).
        timezone = value.timezone if value.cron is not None else None
        written = {"cron": value.cron, "timezone": timezone, "every": value.every_written}
        for key, text in written.items():
            if text is not None:
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
