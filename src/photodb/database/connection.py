"""Where the database is (DATABASE_URL or the embedded server), and the connection pool to it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from typing import Any, TypeVar

import psycopg
from pgvector.psycopg import register_vector
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from photodb.config import Settings
from photodb.database.embedded import EmbeddedDatabaseError, EmbeddedPostgres
from photodb.database.faults import OutageClock
from photodb.database.migrations import apply_migrations

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_POOL_SIZE = 50
#: Connections beyond the workers' own: the registration thread and the progress display.
CONTROL_CONNECTIONS = 2


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached or prepared; the message is safe to show (no password)."""


def pool_max_size(parallel: int) -> int:
    """One connection per worker thread, at most 50 so that a shared server keeps room for other hosts."""
    return max(1, min(parallel, MAX_POOL_SIZE))


def run_pool_size(parallel: int) -> int:
    """The pool of a process-local run: the workers' connections plus the control threads' ones."""
    return pool_max_size(parallel) + CONTROL_CONNECTIONS


def describe_url(url: str) -> str:
    """A libpq URL with the password left out, for messages and logs."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable DATABASE_URL>"
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    user = f"{params['user']}@" if params.get("user") else ""
    return f"{user}{host}{port}/{params.get('dbname', '')}"


def _configure(conn: psycopg.Connection) -> None:
    register_vector(conn)


def behind_pooler(conn: psycopg.Connection) -> bool:
    """True when a pooler (PgBouncer, pgcat, a cloud proxy) sits between this client and the server.

    A pooler answers the connection start itself and hands out its own backend key, so the pid
    the client was told is not the pid of the server process that runs its statements.
    """
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return bool(row[0] != conn.info.backend_pid)


def connect_kwargs(pooled: bool) -> dict[str, Any]:
    """psycopg connection options for every connection PhotoDB makes.

    Behind a transaction pooler each transaction may run on another server connection, where a
    statement prepared on the first one does not exist: prepare nothing on the server then.
    """
    return {"prepare_threshold": None} if pooled else {}


class Database:
    """The one handle stages and CLIs use: a migrated database and a pool of connections to it."""

    def __init__(self, settings: Settings, *, pool_size: int = 4, migrate: bool = True) -> None:
        self.settings = settings
        self.outage = OutageClock(settings.database_retry_deadline_seconds)
        self._embedded: EmbeddedPostgres | None = None
        self.pooled = False
        if settings.database_url is not None:
            self.url = settings.database_url.get_secret_value()
        else:
            self._embedded = EmbeddedPostgres(settings.photodb_home.expanduser())
            try:
                self.url = self._embedded.acquire()
            except EmbeddedDatabaseError as error:
                raise DatabaseUnavailable(str(error)) from error
        try:
            self._detect_pooler()
            if migrate:
                with self.connect() as conn:
                    apply_migrations(conn)
            deadline = settings.database_retry_deadline_seconds
            self.pool = ConnectionPool(
                self.url,
                kwargs=connect_kwargs(self.pooled),
                min_size=1,
                max_size=max(1, pool_size),
                configure=_configure,
                check=ConnectionPool.check_connection,  # a connection the server dropped is replaced, not used
                open=False,
                name="photodb",
                timeout=min(30.0, max(1.0, deadline / 4)),  # a waiting caller retries within the deadline
                reconnect_timeout=max(60.0, deadline),
            )
            self.pool.open(wait=True, timeout=30)
        except BaseException:
            self._release_embedded()
            raise

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    def _detect_pooler(self) -> None:
        """Set `pooled` from DATABASE_POOLER; `auto` asks the server (the embedded one has no pooler)."""
        mode = self.settings.database_pooler
        self.pooled = not self.embedded and mode != "none"  # until known, the probe prepares nothing
        if self.pooled and mode == "auto":
            with self.connect(autocommit=True) as conn:
                self.pooled = behind_pooler(conn)

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        """A connection outside the pool, for long-lived control work (registration, progress)."""
        try:
            conn = psycopg.connect(self.url, autocommit=autocommit, connect_timeout=10, **connect_kwargs(self.pooled))
        except psycopg.OperationalError as error:
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            where = describe_url(self.url)
            raise DatabaseUnavailable(f"cannot connect to the database at {where}: {reason}") from error
        with suppress(psycopg.ProgrammingError):  # the extension is created by the first migration
            register_vector(conn)
        return conn

    def retrying(self, operation: Callable[[], T], what: str) -> T:
        """Run `operation` (which must be safe to repeat), retrying transient errors up to the deadline."""
        return self.outage.retrying(operation, what)

    def call(self, what: str, operation: Callable[..., T], *args: object, **kwargs: object) -> T:
        """`operation(*args, **kwargs)` through `retrying`: a repository call that rides out blips."""
        return self.outage.retrying(partial(operation, *args, **kwargs), what)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.pool.connection() as conn:
            yield conn

    @contextmanager
    def autocommit(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in autocommit mode: one round trip per statement, no BEGIN/COMMIT.

        For single-statement work such as the queue's claim and finish; `conn.transaction()` still
        groups statements where they must succeed or fail together.
        """
        with self.pool.connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                conn.autocommit = False

    def connection_shortage(self, needed: int) -> str | None:
        """Why `needed` more connections may not fit on the server now, or None when they do.

        Several processes (or hosts) on one server each open up to their pool size; past the
        server's max_connections a worker waits for a pooled connection and its photo fails.
        Behind a pooler the run's connections are the pooler's clients, not server connections.
        """
        if self.pooled:
            return None
        with self.connection() as conn:
            row = conn.execute(
                """SELECT current_setting('max_connections')::int,
                          current_setting('superuser_reserved_connections')::int
                            + coalesce(current_setting('reserved_connections', true)::int, 0),
                          (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"""
            ).fetchone()
        assert row is not None
        limit, reserved, in_use = row
        free = limit - reserved - in_use + 1  # this pool's own connection counts in `needed`
        if needed <= free:
            return None
        return (
            f"this run may open {needed} database connections but the server has {max(free, 0)} free "
            f"(max_connections {limit}, {in_use} in use): lower --parallel or raise max_connections"
        )

    def close(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()
        self._release_embedded()

    def _release_embedded(self) -> None:
        if self._embedded is not None:
            self._embedded.release()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
