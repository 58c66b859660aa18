"""What clustering's SQL needs from the server: pgvector 0.8 (l2_normalize since 0.7,
hnsw.iterative_scan since 0.8). Checked once per database before the first clustering statement,
so an old extension gives one clear line instead of an obscure SQL error mid-run."""

from __future__ import annotations

import psycopg

PGVECTOR_REQUIRED = (0, 8, 0)


class PgvectorTooOld(RuntimeError):
    """The server's pgvector is older than clustering's SQL needs."""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("-")[0].split(".") if part.isdigit())


def pgvector_problem(
    installed: str | None, available: str | None, required: tuple[int, ...] = PGVECTOR_REQUIRED
) -> str | None:
    """The one-line complaint about these versions, or None when they will do."""
    need = ".".join(map(str, required))
    if installed is None:
        return f"the pgvector extension is not installed in this database (PhotoDB needs pgvector >= {need})"
    if _version(installed) >= required:
        return None
    if available is not None and _version(available) >= required:
        return (
            f"pgvector {installed} is installed in this database but PhotoDB needs >= {need}; "
            f"the server has {available}: run ALTER EXTENSION vector UPDATE"
        )
    return f"pgvector {installed} is too old: PhotoDB needs pgvector >= {need} on the database server"


def check_pgvector(conn: psycopg.Connection, required: tuple[int, ...] = PGVECTOR_REQUIRED) -> None:
    row = conn.execute(
        """SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'),
                  (SELECT default_version FROM pg_available_extensions WHERE name = 'vector')"""
    ).fetchone()
    assert row is not None
    problem = pgvector_problem(row[0], row[1], required)
    if problem is not None:
        raise PgvectorTooOld(problem)
