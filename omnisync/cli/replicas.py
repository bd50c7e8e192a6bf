"""``omnisync status`` on a shared state store: the replicas and who holds each export.

Read straight from the PostgreSQL store (no control endpoint is needed, so it
works from any machine that can reach the database): each replica's last
heartbeat, the brands it holds and the runs it has under way, and for each
export of the config the replica holding its brand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from omnisync.cli.moments import relative_time
from omnisync.config.model import Config

if TYPE_CHECKING:
    from rich.console import Console


def replicas_document(config: Config) -> dict[str, Any]:
    """The replicas sharing ``config``'s store, their leases and each export's holder.

    Raises :class:`~omnisync.state.store.StateError` (secret-free) when the
    store cannot be read.
    """
    from omnisync.daemon.requested import open_board

    board = open_board(config)
    try:
        snapshot = board.board()
    finally:
        board.close()
    live = {lease.brand: lease for lease in snapshot.leases if lease.live}
    connection_of = {
        connection.brand: name for name, connection in sorted(config.connections.items())
    }
    return {
        "replicas": [
            {
                "id": replica.id,
                "live": replica.live,
                "last_seen": replica.seen_at.astimezone(UTC).isoformat(),
                "started_at": replica.started_at.astimezone(UTC).isoformat(),
                "version": replica.version,
                "config_revision": replica.config_revision,
                "leases": sorted(
                    connection_of.get(brand, brand)
                    for brand, lease in live.items()
                    if lease.holder == replica.id
                ),
                "running": list(replica.running),
            }
            for replica in snapshot.replicas
        ],
        "holders": {
            name: (live[brand].holder if (brand := config.brand_of(name)) in live else None)
            for name in sorted(config.exports)
        },
    }


def render_replicas(document: dict[str, Any], console: Console, *, now: datetime) -> None:
    """The replicas table and the export -> holder list."""
    from rich import box
    from rich.table import Table

    table = Table(
        box=box.SIMPLE_HEAD, title="replicas sharing the state store", title_justify="left"
    )
    for column in ("replica", "last seen", "brands held", "runs under way"):
        table.add_column(column)
    for replica in document["replicas"]:
        # The database's clock stamped it: never "in 2s" on a host a little behind.
        seen = min(datetime.fromisoformat(replica["last_seen"]), now)
        table.add_row(
            replica["id"] + ("" if replica["live"] else " (gone)"),
            relative_time(seen.isoformat(), now),
            ", ".join(replica["leases"]) or "-",
            ", ".join(replica["running"]) or "-",
        )
    console.print(table)
    for export, holder in document["holders"].items():
        console.print(f"  export {export}: {'held by ' + holder if holder else 'no holder'}")


def shared_status(config: Config | None) -> dict[str, Any] | str | None:
    """The replicas of a shared state store, if ``config`` names one (``None`` if not);
    a string saying why they cannot be read."""
    if config is None or not config.daemon.state.shared:
        return None
    from omnisync.state.store import StateError

    try:
        return replicas_document(config)
    except StateError as error:
        return str(error)
