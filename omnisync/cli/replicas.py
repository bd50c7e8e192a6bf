"""The replicas sharing a PostgreSQL state store, read straight from it (no control
endpoint needed), for ``omnisync status`` and ``omnisync drift --repair``."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC
from typing import Any

from omnisync.config.model import Config


def replicas_document(config: Config) -> dict[str, Any]:
    """Each replica's heartbeat, brands held and runs under way, and each export's holder.
    Raises :class:`~omnisync.state.store.StateError` (secret-free)."""
    from omnisync.daemon.requested import open_board

    with closing(open_board(config)) as board:
        snapshot = board.board()
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
