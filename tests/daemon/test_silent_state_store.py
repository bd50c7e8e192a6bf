"""A PostgreSQL state store that accepts connections and never answers (a hung server, a
proxy in front of a dead one): the daemon is ready after one connection timeout, not one per
export and read of its history (under systemd, a start that outlasts TimeoutStartSec is
killed), and says why it cannot read history."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.daemon.harness import DaemonProcess, make_source
from tests.daemon.runfunctions import wait_until
from tests.daemon.yamlconfig import ConfigYaml, ExportYaml

DSN_VARIABLE = "OMNISYNC_STATE_DSN"


class Silent:
    """A TCP listener on loopback that accepts every connection and never says a word."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            self.accepted.append(connection)


@contextmanager
def silent_server() -> Iterator[Silent]:
    server = Silent()
    server._thread.start()
    try:
        yield server
    finally:
        server._listener.close()
        for connection in server.accepted:
            connection.close()


def test_a_silent_state_store_costs_a_start_one_connection_timeout(tmp_path: Path) -> None:
    source = tmp_path / "cdp.sqlite"
    make_source(source, 5)
    exports = tuple(ExportYaml(f"export{number}", schedule="every: 1h") for number in range(8))
    config = ConfigYaml(
        state_dir=tmp_path / "state",
        source_path=source,
        exports=exports,
        extra_daemon={"state": f"{{kind: postgres, dsn: {{env: {DSN_VARIABLE}}}}}"},
    )
    path = tmp_path / "omnisync.yaml"
    path.write_text(config.render())
    with silent_server() as server:
        dsn = f"host=127.0.0.1 port={server.port} dbname=state user=omnisync connect_timeout=3"
        daemon = DaemonProcess(
            config_path=path,
            state_dir=tmp_path / "state",
            log_path=tmp_path / "daemon.log",
            extra_env={DSN_VARIABLE: dsn},
        )
        daemon.start()
        try:
            wait_until(
                lambda: '"event": "daemon_started"' in daemon.log_text(),
                timeout=120,
                message="the daemon to finish starting",
            )
            # The ledger store tries once, and the replica's lease board on its own rounds;
            # the start's reads of history (one per export, to catch up) do not try again.
            assert len(server.accepted) <= 4, daemon.log_text()
            assert "cannot read run history" in daemon.log_text()
            assert "connection timeout expired" in daemon.log_text()
        finally:
            assert daemon.stop() == 0
