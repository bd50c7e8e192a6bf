"""Config objects as dotted fields, to be compared field by field. Pure.

Nested settings are dotted (``mapping.first_name``), lists sorted and joined,
absent values and empty lists left out, shares as written (``20%``), and a
secret shown only as its reference, never resolved.
``relocate`` maps the paths of a config read from a temporary checkout back
to the working tree, so that a path does not differ only for that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping

from omnisync.config.model import DaemonSettings, Guards, Schedule, SecretRef

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
    elif isinstance(value, Guards):
        for item in dataclasses.fields(value):
            setting = getattr(value, item.name)
            if isinstance(setting, float) or (setting is None and item.default is not None):
                # A share as written: ``20%``; a guard turned off by default is left out.
                setting = f"{(1 if setting is None else setting) * 100:g}%"
            yield from _fields(setting, _join(prefix, item.name), relocate)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            if item.name == "name" or not item.compare:
                continue
            yield from _fields(getattr(value, item.name), _join(prefix, item.name), relocate)
    elif isinstance(value, Mapping):
        for key in sorted(value):
            yield from _fields(value[key], _join(prefix, str(key)), relocate)
    elif isinstance(value, tuple | list):
        if value:  # the config's lists are sets (``allowed_users``): their order means nothing
            yield prefix, ", ".join(sorted(str(item) for item in value))
    elif isinstance(value, bool):
        yield prefix, "true" if value else "false"
    elif isinstance(value, str):
        yield prefix, relocate(value)
    else:
        yield prefix, str(value)


def loosened_guards(before: Guards, after: Guards) -> str:
    """The guards that hold fewer runs after than before, as written (``max_removed 20% →
    100%``: a share of ``None`` is off, as 100% is); ``""`` when none does."""
    looser = [
        key
        for key in ("max_removed", "max_changed")
        if _share(getattr(after, key)) > _share(getattr(before, key))
    ]
    looser += ["allow_empty"] * (after.allow_empty > before.allow_empty)
    looser += ["min_members"] * (after.min_members < before.min_members)
    was, now = flatten(before), flatten(after)
    return ", ".join(f"{key} {was.get(key, '100%')} → {now.get(key, '100%')}" for key in looser)


def _share(share: float | None) -> float:
    return 1.0 if share is None else share


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
