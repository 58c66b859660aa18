"""Every SQL statement for collections, photos and metadata (the queue is in queue_repository).

A collection's root may move up to a parent folder while other processes run on it: moving it is
conditional on the root it replaces, registration checks the root its names are relative to,
and photos are read together with the collection's current root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from photodb.database.connection import Database
from photodb.database.models import Collection, Photo
from photodb.database.place_repository import GeocodedPlace, delete_stale_place, write_place

_PHOTO_COLUMNS = (
    "p.id, p.collection_id, p.uuid, p.filename, p.file_size, p.content_hash, p.normalized_path, "
    "p.width, p.height, p.normalized_width, p.normalized_height, p.normalized_scale, "
    "c.root_path AS collection_root"
)


class RootMoved(RuntimeError):
    """The collection's root changed since names were computed; compute them again against it."""

    def __init__(self, root: Path) -> None:
        super().__init__(f"the collection root moved to {root}")
        self.root = root


@dataclass(frozen=True)
class FileFacts:
    """What registration knows about a file on disk."""

    filename: str
    size: int | None
    mtime: datetime | None
    content_hash: str | None


@dataclass(frozen=True)
class Scope:
    """The photos a run works on: a collection, optionally only those under a sub-folder."""

    collection_id: int
    prefix: str | None = None

    @property
    def like_pattern(self) -> str | None:
        if not self.prefix:
            return None
        escaped = self.prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return escaped.rstrip("/") + "/%"


@dataclass
class RegistrationOutcome:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    photo_ids: list[int] | None = None


class PhotoRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- collections -------------------------------------------------------------------------

    def get_or_create_collection(self, name: str) -> Collection:
        with self.db.autocommit() as conn:
            row = conn.execute(
                """INSERT INTO collection (name) VALUES (%s)
                   ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
                   RETURNING id, name, root_path""",
                (name,),
            ).fetchone()
        assert row is not None
        return Collection(row[0], row[1], Path(row[2]) if row[2] else None)

    def set_collection_root(self, collection_id: int, root: Path) -> Collection:
        """Record the root the first time; later calls keep the first root."""
        with self.db.autocommit() as conn:
            row = conn.execute(
                """UPDATE collection SET root_path = COALESCE(root_path, %s) WHERE id = %s
                   RETURNING id, name, root_path""",
                (str(root), collection_id),
            ).fetchone()
        assert row is not None
        return Collection(row[0], row[1], Path(row[2]))

    def get_collection(self, collection_id: int) -> Collection:
        with self.db.autocommit() as conn:
            row = conn.execute("SELECT id, name, root_path FROM collection WHERE id = %s", (collection_id,)).fetchone()
        if row is None:
            raise LookupError(f"collection {collection_id} does not exist")
        return Collection(row[0], row[1], Path(row[2]) if row[2] else None)

    def reroot_collection(self, collection_id: int, old_root: Path, new_root: Path, moved_under: str) -> bool:
        """Move a collection's root from `old_root` up to an ancestor; names gain the `moved_under` prefix.

        False when the root is no longer `old_root` (another process moved it first): the caller
        reads the collection again. The row lock taken by the conditional UPDATE orders movers.
        """
        with self.db.autocommit() as conn, conn.transaction():
            moved = conn.execute(
                "UPDATE collection SET root_path = %s WHERE id = %s AND root_path = %s",
                (str(new_root), collection_id, str(old_root)),
            ).rowcount
            if moved:
                conn.execute(
                    "UPDATE photo SET filename = %s || '/' || filename, updated_at = now() WHERE collection_id = %s",
                    (moved_under, collection_id),
                )
        return moved == 1

    # -- registration ------------------------------------------------------------------------

    def known_files(self, collection_id: int, filenames: Sequence[str]) -> dict[str, FileFacts]:
        with self.db.autocommit() as conn:
            rows = conn.execute(
                """SELECT filename, file_size, file_mtime, content_hash FROM photo
                   WHERE collection_id = %s AND filename = ANY(%s)""",
                (collection_id, list(filenames)),
            ).fetchall()
        return {r[0]: FileFacts(r[0], r[1], r[2], r[3]) for r in rows}

    def register(
        self,
        collection_id: int,
        new_or_changed: Sequence[FileFacts],
        touched: Sequence[FileFacts],
        all_filenames: Sequence[str],
        stages: Sequence[str],
        force_stages: Sequence[str] = (),
        *,
        root: Path,
    ) -> list[int]:
        """Upsert files, reset every stage of a file whose content changed, ensure status rows exist.

        Names are relative to `root`; RootMoved when the collection's root is no longer that
        (checked under a share lock, so a re-rooting waits for this chunk or this chunk for it).
        `touched` are files whose size/mtime moved but whose content hash did not: only their
        facts are refreshed. `force_stages` are put back to pending for all `all_filenames`.
        Returns the photo ids of `all_filenames`.
        """
        with self.db.autocommit() as conn, conn.transaction():
            current = conn.execute(
                "SELECT root_path FROM collection WHERE id = %s FOR SHARE", (collection_id,)
            ).fetchone()
            if current is None or current[0] != str(root):
                raise RootMoved(Path(current[0]) if current and current[0] else root)
            if new_or_changed:
                changed_ids = conn.execute(
                    """WITH incoming AS (
                           SELECT * FROM unnest(%s::text[], %s::bigint[], %s::timestamptz[], %s::text[])
                               AS t(filename, file_size, file_mtime, content_hash)),
                       upserted AS (
                           INSERT INTO photo (collection_id, filename, file_size, file_mtime, content_hash)
                           SELECT %s, filename, file_size, file_mtime, content_hash FROM incoming
                           ON CONFLICT (collection_id, filename) DO UPDATE SET
                               file_size = EXCLUDED.file_size, file_mtime = EXCLUDED.file_mtime,
                               content_hash = EXCLUDED.content_hash, updated_at = now()
                           WHERE photo.content_hash IS DISTINCT FROM EXCLUDED.content_hash
                              OR photo.file_size IS DISTINCT FROM EXCLUDED.file_size
                           RETURNING id, (xmax <> 0) AS existed)
                       SELECT id FROM upserted WHERE existed""",
                    (
                        [f.filename for f in new_or_changed],
                        [f.size for f in new_or_changed],
                        [f.mtime for f in new_or_changed],
                        [f.content_hash for f in new_or_changed],
                        collection_id,
                    ),
                ).fetchall()
                if changed_ids:
                    conn.execute(
                        """UPDATE processing_status SET status = 'pending', error_message = NULL,
                               claimed_by = NULL, claimed_at = NULL, updated_at = now()
                           WHERE photo_id = ANY(%s) AND status <> 'processing'""",
                        ([r[0] for r in changed_ids],),
                    )
            if touched:
                conn.execute(
                    """UPDATE photo SET file_mtime = t.file_mtime, updated_at = now()
                       FROM unnest(%s::text[], %s::timestamptz[]) AS t(filename, file_mtime)
                       WHERE photo.collection_id = %s AND photo.filename = t.filename""",
                    ([f.filename for f in touched], [f.mtime for f in touched], collection_id),
                )
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM photo WHERE collection_id = %s AND filename = ANY(%s)",
                    (collection_id, list(all_filenames)),
                ).fetchall()
            ]
            conn.execute(
                """INSERT INTO processing_status (photo_id, stage)
                   SELECT p, s FROM unnest(%s::bigint[]) AS p, unnest(%s::text[]) AS s
                   ON CONFLICT (photo_id, stage) DO NOTHING""",
                (ids, list(stages)),
            )
            if force_stages:
                conn.execute(
                    """UPDATE processing_status SET status = 'pending', error_message = NULL, updated_at = now()
                       WHERE photo_id = ANY(%s) AND stage = ANY(%s) AND status <> 'processing'""",
                    (ids, list(force_stages)),
                )
        return ids

    # -- photos ------------------------------------------------------------------------------

    def get_photo(self, photo_id: int) -> Photo:
        with self.db.autocommit() as conn:
            cur = conn.cursor(row_factory=class_row(Photo))
            photo = cur.execute(
                f"""SELECT {_PHOTO_COLUMNS} FROM photo p JOIN collection c ON c.id = p.collection_id
                    WHERE p.id = %s""",  # noqa: S608 - constant column list
                (photo_id,),
            ).fetchone()
        if photo is None:
            raise LookupError(f"photo {photo_id} does not exist")
        return photo

    def set_normalized(
        self,
        photo_id: int,
        normalized_path: str,
        size: tuple[int, int],
        normalized_size: tuple[int, int],
        scale: float,
    ) -> None:
        with self.db.autocommit() as conn:
            conn.execute(
                """UPDATE photo SET normalized_path = %s, width = %s, height = %s,
                       normalized_width = %s, normalized_height = %s, normalized_scale = %s, updated_at = now()
                   WHERE id = %s""",
                (normalized_path, *size, *normalized_size, scale, photo_id),
            )

    def upsert_metadata(self, photo_id: int, values: dict[str, Any], place: GeocodedPlace | None = None) -> None:
        """Store a photo's metadata and, in the same transaction, its place: `place` when the GPS was
        geocoded; without one a place of other (or no) coordinates is dropped, a current one stays."""
        columns = [
            "captured_at", "captured_at_offset", "captured_at_source", "latitude", "longitude", "altitude",
            "camera_make", "camera_model", "lens_model", "iso", "aperture", "exposure_time", "focal_length",
            "orientation", "notes", "extra",
        ]  # fmt: skip
        row = {c: values.get(c) for c in columns}
        row["notes"] = list(values.get("notes") or [])
        row["extra"] = Jsonb(values.get("extra") or {})
        assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
        with self.db.autocommit() as conn, conn.transaction():
            conn.execute(
                f"""INSERT INTO metadata (photo_id, {", ".join(columns)})
                    VALUES (%(photo_id)s, {", ".join(f"%({c})s" for c in columns)})
                    ON CONFLICT (photo_id) DO UPDATE SET {assignments}, updated_at = now()""",  # noqa: S608
                {"photo_id": photo_id, **row},
            )
            delete_stale_place(conn, photo_id)
            if place is not None and row["latitude"] is not None and row["longitude"] is not None:
                write_place(conn, photo_id, row["latitude"], row["longitude"], place.place, place.source)

    def get_metadata(self, photo_id: int) -> dict[str, Any] | None:
        with self.db.autocommit() as conn:
            cur = conn.cursor(row_factory=dict_row)
            return cur.execute("SELECT * FROM metadata WHERE photo_id = %s", (photo_id,)).fetchone()


def has_photos(conn: psycopg.Connection) -> bool:
    """Whether any photo was ever registered in this database (an empty new library has none)."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM photo)").fetchone()
    return bool(row[0])
