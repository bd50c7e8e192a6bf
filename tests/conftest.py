"""Fixtures shared by every area of the suite."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from omnisync.emulator import Emulator

#: The server the PostgreSQL tests use: ``$OMNISYNC_TEST_POSTGRES_DSN``, else the
#: local cluster that ``scripts/services`` starts.
POSTGRES_ADMIN_DSN = os.environ.get(
    "OMNISYNC_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "long(seconds): a test that waits on real processes for about that many seconds; "
        "started first (pytest_collection_modifyitems)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the long tests first, the longest first, each followed by a short one.

    Most of a long test's time is spent waiting (daemons, schedules, a
    pre-commit environment), so it costs the suite nothing when it runs
    beside the short ones, and its whole length when it starts last. With
    ``--maxschedchunk 1`` (scripts/check) xdist keeps two tests queued per
    worker, handed out in this order: each worker starts on one long test with
    one short one queued behind it, so no long test waits behind another.
    """
    seconds = {
        item.nodeid: float(marker.args[0])
        for item in items
        if (marker := item.get_closest_marker("long")) is not None
    }
    if not seconds:
        return
    long = sorted(
        (item for item in items if item.nodeid in seconds), key=lambda item: -seconds[item.nodeid]
    )
    short = [item for item in items if item.nodeid not in seconds]
    ordered: list[pytest.Item] = []
    for item in long:
        ordered.append(item)
        if short:
            ordered.append(short.pop(0))
    items[:] = [*ordered, *short]


@pytest.fixture(autouse=True)
def loggers_restored() -> Iterator[None]:
    """The ``omnisync`` and ``apscheduler`` loggers as they were before the test.

    A command run in this process (``main(["drift", ...])``) routes them to the
    stderr of that moment at its own level (``logs.configure_logging``): left so,
    a later test of the worker would log into a finished capture at WARNING.
    """
    loggers = [logging.getLogger(name) for name in ("omnisync", "apscheduler")]
    saved = [(logger, list(logger.handlers), logger.level) for logger in loggers]
    yield
    for logger, handlers, level in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)


def postgres_installed() -> bool:
    """Whether a PostgreSQL server is installed here (or one is named explicitly)."""
    if "OMNISYNC_TEST_POSTGRES_DSN" in os.environ:
        return True
    return any(shutil.which(tool) for tool in ("pg_ctlcluster", "pg_ctl", "postgres")) or (
        os.path.isdir("/usr/lib/postgresql")
    )


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> str:
    """An admin DSN of a reachable PostgreSQL server (see :func:`require_postgres`)."""
    return require_postgres()


def require_postgres() -> str:
    """An admin DSN of a reachable PostgreSQL server, for fixtures and test backends.

    Skips, saying why, where PostgreSQL is not installed (or
    ``OMNISYNC_SKIP_POSTGRES=1``); fails where it is installed but not
    reachable, since ``scripts/services`` starts it before the suite.
    """
    if os.environ.get("OMNISYNC_SKIP_POSTGRES") == "1":
        pytest.skip("OMNISYNC_SKIP_POSTGRES=1")
    if not postgres_installed():
        pytest.skip(
            "PostgreSQL is not installed on this machine (no pg_ctlcluster, pg_ctl or "
            "postgres, and no $OMNISYNC_TEST_POSTGRES_DSN): the PostgreSQL tests need a server"
        )
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed: pip install 'omnisync[postgres]'")
    try:
        psycopg.connect(POSTGRES_ADMIN_DSN, connect_timeout=5).close()
    except psycopg.Error as error:
        pytest.fail(
            f"PostgreSQL is installed but not reachable ({POSTGRES_ADMIN_DSN}): {error}\n"
            "Start it with scripts/services (or point $OMNISYNC_TEST_POSTGRES_DSN at a "
            "server), or set OMNISYNC_SKIP_POSTGRES=1 to skip these tests.",
            pytrace=False,
        )
    return POSTGRES_ADMIN_DSN


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start an emulator (a real HTTP server on loopback) with these arguments;
    every emulator started is stopped when the test ends."""
    with ExitStack() as stack:

        def start(**arguments: Any) -> Emulator:
            return stack.enter_context(Emulator(**arguments))

        yield start


@contextmanager
def fresh_database(admin_dsn: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_dsn``; its DSN. Dropped afterwards."""
    import uuid

    import psycopg
    from psycopg import conninfo

    name = f"omnisync_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield conninfo.make_conninfo(admin_dsn, dbname=name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
