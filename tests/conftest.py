"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh database per test.

The server starts once under a temporary PHOTODB_HOME; migrations are applied once to a template
database, and every test gets its own copy (CREATE DATABASE ... TEMPLATE), which takes tens of
milliseconds instead of re-running the schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.embedded import EmbeddedPostgres
from photodb.database.migrations import apply_migrations

TEMPLATE_DB = "photodb_template"

# Tests never read the developer's own .env or environment.
for _name in list(os.environ):
    if _name.upper() in {"DATABASE_URL", "PHOTODB_HOME", "IMG_PATH", "LOG_FILE", "DETECTION_BACKEND"}:
        del os.environ[_name]


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg-home"))
    uri = server.acquire()
    admin = make_conninfo(uri, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    with psycopg.connect(make_conninfo(uri, dbname=TEMPLATE_DB)) as conn:
        apply_migrations(conn)
    yield server
    server.release()


@pytest.fixture(scope="session")
def admin_url(pg_server: EmbeddedPostgres) -> str:
    return make_conninfo(pg_server.acquire(), dbname="postgres")


def fresh_database(admin_url: str) -> Iterator[str]:
    """A migrated database copied from the template, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    yield make_conninfo(admin_url, dbname=name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(admin_url: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    yield from fresh_database(admin_url)


@pytest.fixture
def other_database_url(admin_url: str) -> Iterator[str]:
    """A second fresh database for the same test (to compare two ways of reaching one result)."""
    yield from fresh_database(admin_url)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        photodb_home=tmp_path / "home",
        img_path=tmp_path / "images",
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings, pool_size=8)
    yield database
    database.close()
