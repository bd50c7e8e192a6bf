"""Config objects for the daemon's unit tests, built straight from the model."""

from __future__ import annotations

from dataclasses import replace

from omnisync.config.model import (
    Config,
    Connection,
    DaemonSettings,
    Export,
    FieldMapping,
    Schedule,
    SecretRef,
    Segment,
    Source,
    User,
)


def every(seconds: int) -> Schedule:
    return Schedule(name=None, every_seconds=seconds)


def cron(expression: str, timezone: str = "UTC") -> Schedule:
    return Schedule(name=None, cron=expression, timezone=timezone)


def export(
    name: str, *, schedule: Schedule | None = None, enabled: bool = True, **changes: object
) -> Export:
    base = Export(
        name=name,
        segment="everyone",
        connection="main",
        owner="olena",
        mapping=FieldMapping(email="email"),
        tag=f"tag-{name}",
        schedule=schedule,
        enabled=enabled,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def config(
    *exports: Export, revision: str = "r1", state_dir: str = "/tmp/omnisync-state"
) -> Config:
    return Config(
        version=1,
        users={"olena": User(name="olena", role="admin")},
        sources={"cdp": Source(name="cdp", kind="sqlite", path="/tmp/cdp.sqlite")},
        segments={
            "everyone": Segment(name="everyone", source="cdp", query="SELECT * FROM customers")
        },
        connections={
            "main": Connection(
                name="main",
                display_name="Main",
                api_key=SecretRef(kind="env", name="OMNISEND_API_KEY"),
                data_transfer_accepted=True,
            )
        },
        schedules={},
        exports={item.name: item for item in exports},
        daemon=DaemonSettings(state_dir=state_dir),
        revision=revision,
    )
