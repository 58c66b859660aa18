"""Helpers shared by the benchmarks: an embedded PostgreSQL in a scratch home, peak RSS, tables."""

from __future__ import annotations

import os
import platform
import resource
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from photodb.database.embedded import EmbeddedPostgres  # noqa: E402

# Benchmarks never read the developer's .env or PhotoDB environment.
for _name in list(os.environ):
    if _name.upper() in {"DATABASE_URL", "PHOTODB_HOME", "IMG_PATH", "LOG_FILE"}:
        del os.environ[_name]


def cache_dir() -> Path:
    """A folder kept between runs (generated inputs are expensive): $PHOTODB_BENCH_CACHE or /tmp."""
    path = Path(os.environ.get("PHOTODB_BENCH_CACHE", Path(tempfile.gettempdir()) / "photodb-bench-cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def embedded_server(home: Path, max_connections: int | None = None) -> Iterator[str]:
    """Start the embedded PostgreSQL under `home` and yield an admin URL (database `postgres`).

    PhotoDB's embedded server allows 300 connections; a benchmark needing more raises the limit,
    which needs a restart: it is written with ALTER SYSTEM (postgresql.auto.conf),
    the server is stopped by releasing the last lease, and started again.
    """
    server = EmbeddedPostgres(home)
    uri = server.acquire()
    if max_connections is not None:
        with psycopg.connect(make_conninfo(uri, dbname="postgres"), autocommit=True) as conn:
            current = int(conn.execute("SHOW max_connections").fetchone()[0])  # type: ignore[index]
            if current < max_connections:
                conn.execute(f"ALTER SYSTEM SET max_connections = {int(max_connections)}")
                conn.close()
                server.release()  # the last lease stops the server
                server = EmbeddedPostgres(home)
                uri = server.acquire()
    try:
        yield make_conninfo(uri, dbname="postgres")
    finally:
        server.release()


def fresh_database(admin_url: str, name: str) -> str:
    """Drop and create database `name`; return its URL (migrations are applied by Database())."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_conninfo(admin_url, dbname=name)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for an empty list)."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain fixed-width table on stdout."""
    text = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in text) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(text[0], widths, strict=True)))
    print(line)
    for row in text[1:]:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    sys.stdout.flush()


def environment() -> str:
    """One line describing the machine the numbers come from."""
    import PIL

    return (
        f"{platform.node()}: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, Pillow {PIL.__version__}"
    )
