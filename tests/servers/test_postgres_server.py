"""The throwaway PostgreSQL server of the tests (tests/servers/postgres.py) is what the tests
believe it is: a real server on 127.0.0.1 only, run by the postgres user when the tests run
as root, a new empty database for each test, dropped after it, and a role that must give its
password. Without the server binaries its tests skip, except under CI, where they fail."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from servers.postgres import PASSWORD, PASSWORD_ROLE, PostgresServer, _unavailable


def test_the_server_listens_on_loopback_and_runs_as_postgres_when_root(
    postgres: PostgresServer,
) -> None:
    postmaster = int((postgres.data / "postmaster.pid").read_text().split()[0])
    owner = Path(f"/proc/{postmaster}").stat().st_uid
    assert owner == (pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid())
    with postgres.admin() as conn:
        addresses = conn.execute("SHOW listen_addresses").fetchone()
        version = conn.execute("SHOW server_version_num").fetchone()
    assert addresses == ("127.0.0.1",)
    assert version is not None and int(version[0]) >= 150000


def test_each_test_gets_a_new_empty_database_dropped_after_it(
    postgres: PostgresServer, pg_url: str
) -> None:
    name = make_url(pg_url).database
    assert name is not None
    with psycopg.connect(host=postgres.host, port=postgres.port, user="postgres", dbname=name) as c:
        tables = c.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)
    other = postgres.create_database()
    assert other != name
    postgres.drop_database(other)
    with postgres.admin() as conn:
        names = {n for (n,) in conn.execute("SELECT datname FROM pg_database")}
    assert name in names and other not in names


def test_the_password_role_must_give_its_password(postgres: PostgresServer) -> None:
    where = {"host": postgres.host, "port": postgres.port, "dbname": "postgres"}
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(user=PASSWORD_ROLE, password="wrong", **where).close()
    psycopg.connect(user=PASSWORD_ROLE, password=PASSWORD, **where).close()


def test_without_server_binaries_the_tests_skip_but_fail_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL tests skipped: no binaries"):
        _unavailable("no binaries")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL tests cannot run: no binaries"):
        _unavailable("no binaries")
