"""What the cluster CLIs share: open the database and resolve an optional --collection name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from photodb.config import load_settings
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database, DatabaseUnavailable


@contextmanager
def open_for_collection(collection: str | None) -> Iterator[tuple[Database, int | None]]:
    """The database and the id of `collection` (None: all); failures become one-line CLI errors."""
    try:
        db = Database(load_settings(), pool_size=2)
    except DatabaseUnavailable as error:
        raise click.ClickException(str(error)) from error
    with db:
        collection_id = None
        if collection is not None:
            with db.connection() as conn:
                collection_id = face_db.collection_id_by_name(conn, collection)
            if collection_id is None:
                raise click.ClickException(f"no collection named {collection!r}")
        yield db, collection_id
