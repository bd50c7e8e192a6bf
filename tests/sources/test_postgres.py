"""PostgreSQL segment sources against the real local PostgreSQL, and an export end to end.

The module creates its own throwaway database (``omnisync_test_<random>``) on
the server named by ``$OMNISYNC_TEST_POSTGRES_DSN`` (default: the local
server on 127.0.0.1:5432 as ``postgres``) and drops it at the end. When the
server cannot be reached the tests fail, saying how to start it, unless
``OMNISYNC_SKIP_POSTGRES=1``.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from omnisync.clock import ScaledClock
from omnisync.config.loader import load_config
from omnisync.config.model import Config, SecretRef, Segment, Source
from omnisync.config.rules import select_problem
from omnisync.emulator import Emulator
from omnisync.engine.clients import ClientPool
from omnisync.engine.report import plan_export
from omnisync.engine.results import RunResult
from omnisync.engine.runner import ExportRunner
from omnisync.sources import PostgresReader, open_segment
from omnisync.sources.errors import SourceError
from omnisync.state import open_state_store
from tests.engine.helpers import API_KEY_VARIABLE, Person, last_sequence, log_since, omnisync
from tests.engine.helpers import people as sample_people
from tests.engine.helpers import person as sample_person
from tests.staging.configs import make_config

PASSWORD = "hunter2-Sekret"
DSN_VARIABLE = "OMNISYNC_TEST_SEGMENT_DSN"

CUSTOMERS = [
    # id, email, first_name, lifetime_value, signed_up_at, vip, tier
    (1, "olena@example.com", "Олена", "10.50", "2024-05-01 12:30:00+03", True, "gold"),
    (2, "jonas@example.lt", "Jonas", None, None, False, "gold"),
    (3, "zoe@example.com", "Zoë 🎉", "7", "2024-01-02 03:04:05.5+00", None, "silver"),
    (4, None, None, "-0.01", "2023-12-31 23:59:59-01", True, "gold"),
]


@pytest.fixture(scope="module")
def dsn(postgres_admin_dsn: str) -> Iterator[str]:
    """The DSN of a fresh database holding ``customers``, dropped afterwards."""
    admin = psycopg.connect(postgres_admin_dsn, autocommit=True, connect_timeout=5)
    name = f"omnisync_test_{secrets.token_hex(6)}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database = psycopg.conninfo.make_conninfo(postgres_admin_dsn, dbname=name)
    try:
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute(
                "CREATE TABLE customers (id integer PRIMARY KEY, email text, first_name text, "
                "lifetime_value numeric(12, 2), signed_up_at timestamptz, vip boolean, tier text)"
            )
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO customers VALUES (%s, %s, %s, %s, %s, %s, %s)", CUSTOMERS
                )
            connection.execute("CREATE SEQUENCE tickets")
            connection.execute(
                "CREATE FUNCTION sneaky() RETURNS SETOF customers LANGUAGE sql AS "
                "$$ INSERT INTO customers (id) VALUES (99) RETURNING * $$"
            )
        yield database
    finally:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()


def with_password(dsn: str) -> str:
    """``dsn`` carrying a password (trust authentication ignores it)."""
    return psycopg.conninfo.make_conninfo(dsn, password=PASSWORD)


def reader(dsn: str, query: str, **options: float) -> PostgresReader:
    return PostgresReader(with_password(dsn), query, segment="vip", source="cdp", **options)


def failure(dsn: str, query: str, columns: tuple[str, ...] = ("email",)) -> SourceError:
    """The error reading ``columns`` of ``query`` raises; it never shows the password."""
    with pytest.raises(SourceError) as caught:
        list(reader(dsn, query).rows(columns))
    assert str(caught.value).startswith("segment 'vip' (source 'cdp'): ")
    assert PASSWORD not in str(caught.value)
    return caught.value


def count_customers(dsn: str) -> int:
    with psycopg.connect(dsn) as connection:
        row = connection.execute("SELECT count(*) FROM customers").fetchone()
    assert row is not None
    return int(row[0])


# -- reading ------------------------------------------------------------------------------


def test_columns_are_those_the_query_returns(dsn: str) -> None:
    query = 'SELECT id, email, first_name AS "First" FROM customers;  -- trailing'
    assert failure(dsn, query, ("phone",)).cause == (
        "missing column 'phone' (the segment has: id, email, First)"
    )


def test_rows_stream_the_requested_columns_as_the_other_sources_yield_them(dsn: str) -> None:
    columns = ("email", "first_name", "lifetime_value", "signed_up_at", "vip", "id")
    rows = list(reader(dsn, "SELECT * FROM customers ORDER BY id", itersize=2).rows(columns))
    assert rows == [
        ("olena@example.com", "Олена", "10.50", "2024-05-01T09:30:00+00:00", "true", 1),
        ("jonas@example.lt", "Jonas", None, None, "false", 2),
        ("zoe@example.com", "Zoë 🎉", "7.00", "2024-01-02T03:04:05.500000+00:00", None, 3),
        (None, None, "-0.01", "2024-01-01T00:59:59+00:00", "true", 4),
    ]


def test_times_python_cannot_hold_come_through_as_text_for_their_row_alone(dsn: str) -> None:
    # `infinity` is a common "never" in PostgreSQL: one such row must not fail the segment.
    query = (
        "SELECT 'a@example.com' AS email, '-infinity'::timestamptz AS at, 'infinity'::date AS day,"
        " '24:00:00'::time AS t, '24:00:00+00'::timetz AS tz, '1 day'::interval AS span"
        " UNION ALL SELECT 'b@example.com', '2024-05-01 09:30+00', '0044-03-15 BC',"
        " '10:00', '10:00+00', '1990000000 days'"
        " UNION ALL SELECT 'c@example.com', '12000-01-01 00:00+00', '2024-05-01',"
        " '10:00', '10:00+00', '1 day'"
    )
    assert list(reader(dsn, query).rows(("email", "at", "day", "t", "tz", "span"))) == [
        ("a@example.com", "-infinity", "infinity", "24:00:00", "24:00:00+00", "1 day, 0:00:00"),
        (
            "b@example.com",
            "2024-05-01T09:30:00+00:00",
            "0044-03-15 BC",
            "10:00:00",
            "10:00:00+00:00",
            "1990000000 days",
        ),
        (
            "c@example.com",
            "12000-01-01 00:00:00+00",
            "2024-05-01",
            "10:00:00",
            "10:00:00+00:00",
            "1 day, 0:00:00",
        ),
    ]


def test_an_error_about_a_row_value_never_quotes_it(dsn: str) -> None:
    query = "SELECT email, (email || 'x')::bigint AS phone FROM customers WHERE id = 1"
    error = failure(dsn, query, ("email", "phone"))
    assert "olena" not in str(error)
    assert "invalid input syntax for type bigint: … (a value of a row, not shown)" in str(error)
    error = failure(dsn, "SELECT email, make_date(1990, 13, 5) AS day FROM customers", ("day",))
    assert "1990" not in str(error)


def test_an_error_quoting_a_row_value_without_a_colon_never_shows_it(dsn: str) -> None:
    # `invalid value "olena@example.com" for "Mon"`: the value in quotes, no colon before it.
    query = "SELECT email FROM customers WHERE to_date(email, 'Mon DD YYYY') IS NOT NULL"
    error = failure(dsn, query)
    assert "olena" not in str(error) and "@" not in str(error)
    assert (
        """the query failed: 'invalid value "…" for "…" (a value of a row, not shown)'"""
    ) in str(error)
    # Other conditions quote row values too; a mistake in the query's own text is placed
    # in it, and shown whole.
    error = failure(dsn, "SELECT email FROM customers WHERE current_setting(email) = ''")
    assert "olena" not in str(error) and "@" not in str(error)
    error = failure(dsn, "SELECT email FROM customers WHERE emial = ''")
    assert """'column "emial" does not exist' at line 1""" in str(error)


def test_text_and_integer_rows_come_through_as_they_are(dsn: str) -> None:
    rows = list(reader(dsn, "SELECT * FROM customers ORDER BY id").rows(["id", "first_name"]))
    assert rows == [(1, "Олена"), (2, "Jonas"), (3, "Zoë 🎉"), (4, None)]


def test_rows_come_from_a_server_side_cursor_in_pieces_closed_when_abandoned(dsn: str) -> None:
    rows = reader(dsn, "SELECT * FROM customers ORDER BY id", itersize=2).rows(["email"])
    assert next(rows) == ("olena@example.com",)
    with psycopg.connect(dsn) as observer:
        [(query, state)] = observer.execute(
            "SELECT query, state FROM pg_stat_activity "
            "WHERE application_name = 'omnisync' AND datname = current_database()"
        ).fetchall()
    assert query == 'FETCH FORWARD 2 FROM "omnisync_segment"'
    assert state == "idle in transaction"
    rows.close()  # an abandoned read closes its connection
    with psycopg.connect(dsn) as observer:
        for _ in range(100):
            sessions = observer.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'omnisync' AND datname = current_database()"
            ).fetchone()
            if sessions == (0,):
                break
            time.sleep(0.05)
        assert sessions == (0,)


def test_mapped_columns_match_result_columns_whatever_their_case(dsn: str) -> None:
    query = 'SELECT email AS "Email", tier FROM customers WHERE id = 1'
    assert list(reader(dsn, query).rows(["email", "TIER"])) == [("olena@example.com", "gold")]
    ambiguous = failure(dsn, 'SELECT email AS "Email", email FROM customers', ("EMAIL",))
    assert ambiguous.cause == "column 'EMAIL' is ambiguous: the segment has 'Email', 'email'"


def test_an_empty_result_is_an_empty_segment(dsn: str) -> None:
    assert list(reader(dsn, "SELECT * FROM customers WHERE id > 99").rows(["email"])) == []


def test_the_reader_never_shows_its_dsn(dsn: str) -> None:
    assert PASSWORD not in repr(reader(dsn, "SELECT 1"))
    assert repr(reader(dsn, "SELECT 1")) == "PostgresReader(segment='vip', source='cdp')"


# -- errors -------------------------------------------------------------------------------


def test_a_missing_table_is_reported_with_where_the_query_names_it(dsn: str) -> None:
    error = failure(dsn, "SELECT * FROM clients")
    assert error.cause == (
        "missing table: the query failed with 'relation \"clients\" does not exist' "
        "at line 1, column 15 of the query"
    )


def test_a_column_the_query_itself_names_but_the_table_lacks(dsn: str) -> None:
    with pytest.raises(SourceError) as caught:
        list(reader(dsn, "SELECT email,\n       emial FROM customers").rows(["email"]))
    assert caught.value.cause == (
        "missing column: the query failed with 'column \"emial\" does not exist' "
        "at line 2, column 8 of the query "
        '(hint: Perhaps you meant to reference the column "customers.email".)'
    )


def test_a_mapped_column_the_query_does_not_return_lists_what_it_does(dsn: str) -> None:
    error = failure(dsn, "SELECT id, email FROM customers", ("email", "city"))
    assert error.cause == "missing column 'city' (the segment has: id, email)"


def test_a_syntax_error_says_where_and_that_the_query_must_be_one_select(dsn: str) -> None:
    # Positions count characters, not bytes (the Cyrillic literal comes first).
    error = failure(dsn, "SELECT * FROM customers WHERE first_name = 'Олена'\n  ORDR BY id")
    assert error.cause == (
        "bad query: 'syntax error at or near \"ORDR\"' at line 2, column 3 of the query; "
        "a segment query must be exactly one SELECT statement"
    )
    error = failure(dsn, "SELECT * FROM customers WHERE")
    assert error.cause == (
        "bad query: 'syntax error at or near \")\"' at the end of the query; "
        "a segment query must be exactly one SELECT statement"
    )
    error = failure(dsn, "SELECT email FROM customers; SELECT 2")
    assert error.cause == (
        "bad query: the query must be a single statement (it has more than one ';'-separated part)"
    )


def test_a_statement_that_is_not_a_select_is_refused_and_nothing_changes(dsn: str) -> None:
    for query, verb in (("DELETE FROM customers", "DELETE"), ("TRUNCATE customers", "TRUNCATE")):
        error = failure(dsn, query)
        assert error.cause == f"bad query: the query must be a SELECT statement, not {verb}"
    data_modifying = failure(
        dsn, "WITH gone AS (DELETE FROM customers RETURNING *) SELECT * FROM gone"
    )
    assert data_modifying.cause.startswith("bad query: 'WITH clause containing a data-modifying")
    assert count_customers(dsn) == len(CUSTOMERS)


def test_a_select_that_would_write_is_refused_by_the_read_only_transaction(dsn: str) -> None:
    for query, what in (
        ("SELECT * FROM sneaky()", "INSERT"),
        ("SELECT nextval('tickets') AS email", "nextval()"),
        ("SELECT * FROM customers FOR UPDATE", "SELECT FOR UPDATE"),
    ):
        error = failure(dsn, query)
        assert error.cause == (
            f"the query tries to write ('cannot execute {what} in a read-only transaction'): "
            "segments are read in a read-only transaction, so a segment query may only read"
        )
    assert count_customers(dsn) == len(CUSTOMERS)
    with psycopg.connect(dsn) as connection:
        assert connection.execute("SELECT last_value, is_called FROM tickets").fetchone() == (
            1,
            False,
        )


def test_a_query_running_past_the_statement_timeout_is_cancelled(dsn: str) -> None:
    slow = reader(dsn, "SELECT email, pg_sleep(30) FROM customers", statement_timeout=0.2)
    with pytest.raises(SourceError) as caught:
        list(slow.rows(["email"]))
    assert caught.value.cause == (
        "the query was cancelled ('canceling statement due to statement timeout'; "
        "the limit is 0.2 s)"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("nobody-listens", r"cannot connect to PostgreSQL: .*Connection refused"),
        ("unknown-host", r"cannot connect to PostgreSQL: .*nonexistent\.invalid"),
        ("unknown-role", r"cannot connect to PostgreSQL: .*role \"no_such_role\" does not exist"),
        ("unknown-database", r"cannot connect to PostgreSQL: .*database \"no_such_db\" does not"),
    ],
)
def test_connection_failures_say_why_without_the_password(
    dsn: str, target: str, expected: str
) -> None:
    base = psycopg.conninfo.conninfo_to_dict(dsn)
    host, port = str(base.get("host", "127.0.0.1")), str(base.get("port", "5432"))
    uri = {
        "nobody-listens": f"postgresql://omnisync:{PASSWORD}@127.0.0.1:{free_port()}/crm",
        "unknown-host": f"postgresql://omnisync:{PASSWORD}@nonexistent.invalid/crm",
        "unknown-role": f"postgresql://no_such_role:{PASSWORD}@{host}:{port}/postgres",
        "unknown-database": f"postgresql://postgres:{PASSWORD}@{host}:{port}/no_such_db",
    }[target]
    failing = PostgresReader(uri, "SELECT 1", segment="vip", source="cdp")
    with pytest.raises(SourceError, match=expected) as caught:
        list(failing.rows(["email"]))
    assert PASSWORD not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is not None
    assert PASSWORD not in repr(caught.value)


@pytest.mark.parametrize(
    "malformed",
    [
        f"postgresql://omnisync:{PASSWORD}@[::1/crm",  # libpq quotes the whole URI
        f"host=localhost password='{PASSWORD}' port",
        f"host=localhost password={PASSWORD} nonsense=1",
    ],
)
def test_a_malformed_dsn_is_reported_without_the_password(malformed: str) -> None:
    with pytest.raises(SourceError, match=r"the connection string \(DSN\) is malformed") as caught:
        list(PostgresReader(malformed, "SELECT 1", segment="vip", source="cdp").rows(["email"]))
    assert PASSWORD not in str(caught.value)


def test_without_psycopg_the_error_says_which_extra_to_install(tmp_path: Path) -> None:
    # A real interpreter in which psycopg cannot be imported (a None entry in
    # sys.modules makes `import psycopg` raise ImportError), as in a plain install.
    script = (
        "import sys\n"
        "sys.modules['psycopg'] = None\n"
        "from omnisync.sources import PostgresReader, SourceError\n"
        "try:\n"
        "    reader = PostgresReader('host=x', 'SELECT 1', segment='vip', source='cdp')\n"
        "    list(reader.rows(['email']))\n"
        "except SourceError as error:\n"
        "    print(error)\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert finished.stdout.startswith("segment 'vip' (source 'cdp'): reading a PostgreSQL")
    assert "install omnisync[postgres]" in finished.stdout


# -- open_segment -------------------------------------------------------------------------


def postgres_config(tmp_path: Path, *, query: str | None = "SELECT * FROM customers") -> Config:
    config = make_config(source_path=tmp_path / "unused", state_dir=tmp_path)
    return replace(
        config,
        sources={"cdp": Source(name="cdp", kind="postgres", dsn=SecretRef("env", DSN_VARIABLE))},
        segments={"vip": Segment(name="vip", source="cdp", query=query)},
    )


def test_open_segment_resolves_the_dsn_from_the_given_environment(dsn: str, tmp_path: Path) -> None:
    segment = open_segment(
        postgres_config(tmp_path, query="SELECT * FROM customers WHERE tier = 'gold' ORDER BY id"),
        "vip",
        environ={DSN_VARIABLE: with_password(dsn)},
    )
    assert isinstance(segment, PostgresReader)
    assert (segment.segment, segment.source) == ("vip", "cdp")
    assert list(segment.rows(["email"])) == [
        ("olena@example.com",),
        ("jonas@example.lt",),
        (None,),
    ]


def test_a_plan_resolves_the_dsn_from_the_environment_given(dsn: str, tmp_path: Path) -> None:
    """The environment given (a run gives its client pool's) serves the source's DSN,
    and a DSN in a credentials directory (systemd LoadCredential) is found there."""
    assert DSN_VARIABLE not in os.environ
    config = postgres_config(tmp_path, query="SELECT * FROM customers WHERE tier = 'gold'")
    with open_state_store(config.daemon.state_dir) as store:
        plan = plan_export(config, "vip", store=store, environ={DSN_VARIABLE: with_password(dsn)})
    assert plan.counts.members == 2  # Olena and Jonas; the gold row without an e-mail is invalid

    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "segment-dsn").write_text(with_password(dsn) + "\n", encoding="utf-8")
    from_credential = replace(
        config,
        sources={
            "cdp": Source(name="cdp", kind="postgres", dsn=SecretRef("credential", "segment-dsn"))
        },
    )
    with open_state_store(config.daemon.state_dir) as store:
        plan = plan_export(
            from_credential,
            "vip",
            store=store,
            environ={"CREDENTIALS_DIRECTORY": str(credentials)},
        )
        assert plan.counts.members == 2


def test_open_segment_names_an_unavailable_dsn_secret(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        open_segment(postgres_config(tmp_path), "vip", environ={})
    assert caught.value.cause == (
        f"cannot connect: the dsn secret env:{DSN_VARIABLE} is unavailable: "
        f"environment variable {DSN_VARIABLE} is not set"
    )
    with pytest.raises(SourceError, match="a segment on a PostgreSQL source needs a query"):
        open_segment(postgres_config(tmp_path, query=None), "vip", environ={DSN_VARIABLE: "x"})


# -- an export end to end -----------------------------------------------------------------


def write_people(dsn: str, rows: list[Person]) -> None:
    with psycopg.connect(dsn) as connection:
        connection.execute("DROP TABLE IF EXISTS people")
        connection.execute(
            "CREATE TABLE people (id integer PRIMARY KEY, email text, first_name text, "
            "last_name text, city text, country text, tier text, status text, "
            "status_at timestamptz, lifetime_value numeric(12, 2), vip boolean)"
        )
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO people VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        *(p.id, p.email, p.first_name, p.last_name, p.city, p.country, p.tier),
                        *(p.status, p.status_at, f"{p.id}.50", p.id % 2 == 0),
                    )
                    for p in rows
                ],
            )


def write_export_config(directory: Path, *, dsn: str, base_url: str) -> Path:
    # A {file: ...} reference: the engine resolves the DSN from the process
    # environment, which tests do not touch; a file needs no environment.
    (directory / "dsn.secret").write_text(with_password(dsn) + "\n", encoding="utf-8")
    path = directory / "omnisync.yaml"
    path.write_text(
        f"""\
version: 1
users:
  olena: {{role: admin}}
sources:
  crm: {{kind: postgres, dsn: {{file: dsn.secret}}}}
segments:
  members:
    source: crm
    query: SELECT * FROM people WHERE tier = 'gold' ORDER BY id
connections:
  shop:
    kind: omnisend
    display_name: Shop
    api_key: {{env: {API_KEY_VARIABLE}}}
    base_url: '{base_url}'
    data_transfer_accepted: true
exports:
  members:
    segment: members
    connection: shop
    owner: olena
    mapping:
      email: email
      first_name: first_name
      last_name: last_name
      city: city
      country: country
      custom_properties: {{lifetime_value: lifetime_value, vip: vip}}
    consent: {{status_column: status, changed_at_column: status_at}}
daemon:
  state_dir: '{directory / "state"}'
""",
        encoding="utf-8",
    )
    return path


def plan_counts(config_path: Path) -> dict[str, object]:
    planned = omnisync("plan", "members", "--config", str(config_path), "--format", "json")
    assert planned.returncode == 0, planned.stderr
    [plan] = json.loads(planned.stdout)["plans"]
    return {
        key: plan[key] for key in ("to_create", "to_update", "to_tag", "to_untag", "unchanged")
    } | {"invalid": plan["invalid"]}


def test_a_run_resolves_the_dsn_from_its_client_pools_environment(dsn: str, tmp_path: Path) -> None:
    """A daemon's runs read a source's DSN where the pool reads keys (systemd
    LoadCredential: $CREDENTIALS_DIRECTORY), not from the process environment."""
    write_people(dsn, sample_people(5))
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "segment-dsn").write_text(with_password(dsn) + "\n", encoding="utf-8")
    assert "CREDENTIALS_DIRECTORY" not in os.environ
    clock = ScaledClock(60.0)
    with Emulator(api_keys=("test-key",), clock=clock) as emulator:
        config_path = write_export_config(tmp_path, dsn=dsn, base_url=emulator.base_url)
        text = config_path.read_text(encoding="utf-8")
        config_path.write_text(
            text.replace("{file: dsn.secret}", "{credential: segment-dsn}"), encoding="utf-8"
        )
        config = load_config(config_path, environ={})
        environ = {API_KEY_VARIABLE: "test-key", "CREDENTIALS_DIRECTORY": str(credentials)}
        with (
            open_state_store(config.daemon.state_dir) as store,
            ClientPool(clock=clock, environ=environ) as pool,
        ):
            result = ExportRunner(config, store=store, clients=pool, clock=clock).run(
                "members", trigger="test"
            )
    assert result.status == "succeeded", result.error
    assert result.counts.upserted == 5


def test_an_export_from_postgresql_end_to_end(dsn: str, tmp_path: Path) -> None:
    rows = [
        *sample_people(60),
        sample_person(900, email=None),
        sample_person(901, email="broken@"),
        sample_person(902, tier="silver"),  # not in the segment
    ]
    write_people(dsn, rows)
    clock = ScaledClock(60.0)
    with Emulator(api_keys=("test-key",), clock=clock) as emulator:
        config_path = write_export_config(tmp_path, dsn=dsn, base_url=emulator.base_url)
        assert plan_counts(config_path) == {
            "to_create": 60,
            "to_update": 0,
            "to_tag": 60,
            "to_untag": 0,
            "unchanged": 0,
            "invalid": 2,
        }

        def run() -> RunResult:
            config = load_config(config_path, environ={})
            with (
                open_state_store(config.daemon.state_dir) as store,
                ClientPool(clock=clock, environ={API_KEY_VARIABLE: "test-key"}) as pool,
            ):
                result = ExportRunner(config, store=store, clients=pool, clock=clock).run(
                    "members", trigger="test"
                )
            assert result.status == "succeeded", result.error
            return result

        counts = run().counts
        assert (counts.upserted, counts.tagged, counts.invalid) == (60, 60, 2)
        emulator.drain()  # tags calls are applied asynchronously, as Omnisend does
        contacts = {contact["email"]: contact for contact in emulator.contacts()}
        assert set(contacts) == {f"person{number}@example.com" for number in range(60)}
        assert all(contact["tags"] == ["members"] for contact in contacts.values())
        olena = contacts["person0@example.com"]
        assert (olena["firstName"], olena["city"]) == ("Олена", "Київ")
        assert olena["customProperties"] == {"lifetime_value": "0.50", "vip": "true"}
        sunny = contacts["person6@example.com"]
        assert sunny["firstName"] == "Sunny ☀️"
        assert sunny["statuses"][0]["status"] == "subscribed"
        assert sunny["statuses"][0]["statusChangedAt"].startswith("2024-05-01T10:00:00")

        before = last_sequence(emulator)
        again = run().counts
        assert log_since(emulator, before) == []  # the second run sends nothing
        assert (again.unchanged, again.upserted, again.requests) == (60, 0, 0)

        with psycopg.connect(dsn) as connection:
            connection.execute("UPDATE people SET city = 'Одеса' WHERE id IN (1, 2, 3)")
            connection.execute("UPDATE people SET tier = 'silver' WHERE id IN (10, 11)")
        assert plan_counts(config_path) == {
            "to_create": 0,
            "to_update": 3,
            "to_tag": 0,
            "to_untag": 2,
            "unchanged": 55,
            "invalid": 2,
        }


def test_plan_through_the_cli_says_why_a_source_cannot_be_read_without_the_password(
    tmp_path: Path,
) -> None:
    config_path = write_export_config(
        tmp_path, dsn="host=127.0.0.1", base_url="http://127.0.0.1:9/api"
    )
    config_path.write_text(
        config_path.read_text(encoding="utf-8").replace(
            "{file: dsn.secret}", f"{{env: {DSN_VARIABLE}}}"
        ),
        encoding="utf-8",
    )
    environment = {**os.environ, API_KEY_VARIABLE: "test-key"}
    environment.pop(DSN_VARIABLE, None)
    for dsn_value, expected in (
        (None, f"cannot connect: the dsn secret env:{DSN_VARIABLE} is unavailable"),
        (
            f"postgresql://omnisync:{PASSWORD}@127.0.0.1:{free_port()}/crm",
            "cannot connect to PostgreSQL: connection failed",
        ),
    ):
        if dsn_value is not None:
            environment[DSN_VARIABLE] = dsn_value
        planned = subprocess.run(
            [sys.executable, "-m", "omnisync", "plan", "--config", str(config_path)],
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            check=False,
        )
        assert planned.returncode == 1
        assert (
            "omnisync plan: export 'members': segment 'members' (source 'crm'): " + expected
        ) in planned.stderr
        assert PASSWORD not in planned.stdout + planned.stderr
        assert "Traceback" not in planned.stderr


def test_strings_are_read_as_validate_reads_them_whatever_the_servers_setting(dsn: str) -> None:
    # With backslash escapes (standard_conforming_strings off), `'\'` would hide a
    # parenthesis that closes omnisync's wrapper from validate's scanner.
    query = (
        "SELECT email FROM customers WHERE email <> '\\' ( ' ) AS segment UNION ALL "
        "SELECT secret AS email FROM other WHERE secret <> ' ) ' UNION ALL "
        "SELECT email FROM (SELECT email FROM customers"
    )
    assert select_problem(query, dialect="postgres") is None
    legacy = psycopg.conninfo.make_conninfo(dsn, options="-c standard_conforming_strings=off")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("CREATE TABLE other (secret text)")
        connection.execute("INSERT INTO other VALUES ('not-in-the-segment@example.com')")
    try:
        with pytest.raises(SourceError, match="syntax error"):
            list(reader(legacy, query).rows(["email"]))
    finally:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("DROP TABLE other")
