"""Migration 0005: photos normalized before it get the scale their sizes imply."""

from __future__ import annotations

import uuid

import psycopg
from psycopg.conninfo import make_conninfo

from photodb.database.migrations import apply_migrations, load_migrations


def test_existing_photos_get_their_scale_from_their_sizes(admin_url):
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(make_conninfo(admin_url, dbname=name)) as conn:
            migrations = load_migrations()
            apply_migrations(conn, [m for m in migrations if m.version < 5])
            conn.execute(
                """INSERT INTO photo (collection_id, filename, width, height, normalized_width, normalized_height)
                   VALUES (1, 'halved.jpg', 4000, 3000, 2000, 1500), (1, 'full.jpg', 640, 480, 640, 480),
                          (1, 'registered.jpg', NULL, NULL, NULL, NULL)"""
            )
            conn.commit()
            assert apply_migrations(conn, migrations) == [m.version for m in migrations if m.version >= 5]
            scales = dict(conn.execute("SELECT filename, normalized_scale FROM photo").fetchall())
        assert scales == {"halved.jpg": 0.5, "full.jpg": 1.0, "registered.jpg": None}
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
