"""Opening the state store a config names: SQLite in ``state_dir``, or PostgreSQL.

The one place that turns ``daemon.state`` into a :class:`LedgerStore`, so the daemon and every
command read and write the same store. A PostgreSQL DSN is a secret reference, resolved here
and never shown: errors name the reference and the server.
"""

from __future__ import annotations

from collections.abc import Mapping

from omnisync.config.model import DaemonSettings
from omnisync.config.secrets import SecretUnavailable, resolve_secret
from omnisync.state.sql_store import LedgerStore
from omnisync.state.sqlite import SqliteLedgerStore, open_state_store, state_path
from omnisync.state.store import StateError


def resolve_state_dsn(settings: DaemonSettings, *, environ: Mapping[str, str] | None = None) -> str:
    """The PostgreSQL DSN of ``settings.state``; :class:`StateError` naming the reference
    (never its value) when it cannot be read."""
    reference = settings.state.dsn
    if reference is None:
        raise StateError("daemon.state has no dsn: a `postgres` state store needs one")
    try:
        return resolve_secret(reference, environ=environ)
    except SecretUnavailable as error:
        raise StateError(f"cannot open the state store: daemon.state.dsn: {error}") from None


def open_configured_store(
    settings: DaemonSettings, *, environ: Mapping[str, str] | None = None
) -> LedgerStore:
    """Open (creating or migrating as needed) the state store ``settings`` describe; raises
    :class:`StateError` (secret-free) when it cannot be opened,
    :class:`~omnisync.state.store.StateSchemaTooNew` for one written by a newer omnisync."""
    if not settings.state.shared:
        return open_state_store(settings.state_dir)
    dsn = resolve_state_dsn(settings, environ=environ)
    try:
        from omnisync.state.postgres import PostgresLedgerStore
    except ImportError:
        raise StateError(
            "a `postgres` state store needs psycopg: pip install 'omnisync[postgres]'"
        ) from None
    return PostgresLedgerStore(dsn)


def open_existing_store(
    settings: DaemonSettings, *, environ: Mapping[str, str] | None = None
) -> LedgerStore | None:
    """The state store ``settings`` name, to read what was delivered: the shared (PostgreSQL)
    one, or the SQLite file under ``state_dir``, never created here (``None`` when there is no
    such file). Raises :class:`StateError` (secret-free)."""
    if settings.state.shared:
        return open_configured_store(settings, environ=environ)
    path = state_path(settings.state_dir)
    return SqliteLedgerStore(path) if path.is_file() else None


def describe_store(settings: DaemonSettings) -> str:
    """Where the state lives, for messages, without secrets."""
    if settings.state.shared:
        reference = settings.state.dsn.describe() if settings.state.dsn else "no dsn"
        return f"the PostgreSQL state store ({reference})"
    return str(state_path(settings.state_dir))
