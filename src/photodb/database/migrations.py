"""Numbered raw-SQL migrations applied at start, each in the same transaction as its record.

Two processes starting at once serialise on a transaction-scoped advisory lock, so the second
one finds the first one's work recorded and applies nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

#: Arbitrary but fixed key for pg_advisory_xact_lock ("photodb" in ASCII, folded into int64).
MIGRATION_LOCK_KEY = 0x70686F746F6462
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    """`photodb/_migrations` in an installed wheel, else `migrations/` of the source checkout."""
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / "_migrations", package_dir.parent.parent / "migrations"):
        if candidate.is_dir():
            return candidate
    raise MigrationError(f"no migrations folder found next to {package_dir}")


def load_migrations(folder: Path | None = None) -> list[Migration]:
    folder = folder or migrations_dir()
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a number in {folder}")
    return found


def apply_migrations(conn: psycopg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply what is missing; return the versions applied now."""
    migrations = load_migrations() if migrations is None else migrations
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
                   applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
        )
        recorded = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
        for migration in migrations:
            if migration.version in recorded:
                if recorded[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was edited after it was applied; "
                        "add a new migration instead"
                    )
                continue
            log.info("applying migration %04d_%s", migration.version, migration.name)
            try:
                conn.execute(migration.sql.encode())
            except psycopg.Error as error:
                raise MigrationError(f"migration {migration.version:04d}_{migration.name} failed: {error}") from error
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            applied_now.append(migration.version)
    return applied_now


def render_schema(migrations: list[Migration] | None = None) -> str:
    """The full schema as one file: every migration in order (what `schema.sql` holds)."""
    migrations = load_migrations() if migrations is None else migrations
    parts = ["-- PhotoDB schema. Generated from migrations/ by `python scripts/render_schema.py`; do not edit.\n"]
    for migration in migrations:
        parts.append(f"\n-- ==== {migration.version:04d}_{migration.name} ====\n{migration.sql}")
    return "".join(parts)
