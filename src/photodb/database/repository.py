"""Every SQL statement for collections, photos, metadata and the processing queue.

Work is claimed as (photo, stage) rows of processing_status with `FOR UPDATE SKIP LOCKED`, so any
number of threads, processes and hosts can share one queue and never run the same pair twice.
A claim remembers who holds it; claims of dead local processes and claims older than the lease
are put back to 'pending' so that a crashed run is finished by the next one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from photodb.database.connection import Database
from photodb.database.models import Claim, Collection, Photo, StageCounts, StageError

_PHOTO_COLUMNS = (
    "id, collection_id, uuid, filename, file_size, content_hash, normalized_path, "
    "width, height, normalized_width, normalized_height, normalized_scale"
)


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

    def reroot_collection(self, collection_id: int, new_root: Path, moved_under: str) -> Collection:
        """Move a collection's root up to an ancestor folder; stored names gain the `moved_under` prefix."""
        with self.db.autocommit() as conn, conn.transaction():
            conn.execute("SELECT 1 FROM collection WHERE id = %s FOR UPDATE", (collection_id,))
            conn.execute(
                "UPDATE photo SET filename = %s || '/' || filename, updated_at = now() WHERE collection_id = %s",
                (moved_under, collection_id),
            )
            row = conn.execute(
                "UPDATE collection SET root_path = %s WHERE id = %s RETURNING id, name, root_path",
                (str(new_root), collection_id),
            ).fetchone()
        assert row is not None
        return Collection(row[0], row[1], Path(row[2]))

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
    ) -> list[int]:
        """Upsert files, reset every stage of a file whose content changed, ensure status rows exist.

        `touched` are files whose size/mtime moved but whose content hash did not: only their
        facts are refreshed. `force_stages` are put back to pending for all `all_filenames`.
        Returns the photo ids of `all_filenames`.
        """
        with self.db.autocommit() as conn, conn.transaction():
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
                f"SELECT {_PHOTO_COLUMNS} FROM photo WHERE id = %s",  # noqa: S608 - constant column list
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

    def upsert_metadata(self, photo_id: int, values: dict[str, Any]) -> None:
        columns = [
            "captured_at", "captured_at_offset", "captured_at_source", "latitude", "longitude", "altitude",
            "camera_make", "camera_model", "lens_model", "iso", "aperture", "exposure_time", "focal_length",
            "orientation", "notes", "extra",
        ]  # fmt: skip
        row = {c: values.get(c) for c in columns}
        row["notes"] = list(values.get("notes") or [])
        row["extra"] = Jsonb(values.get("extra") or {})
        assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
        with self.db.autocommit() as conn:
            conn.execute(
                f"""INSERT INTO metadata (photo_id, {", ".join(columns)})
                    VALUES (%(photo_id)s, {", ".join(f"%({c})s" for c in columns)})
                    ON CONFLICT (photo_id) DO UPDATE SET {assignments}, updated_at = now()""",  # noqa: S608
                {"photo_id": photo_id, **row},
            )

    def get_metadata(self, photo_id: int) -> dict[str, Any] | None:
        with self.db.autocommit() as conn:
            cur = conn.cursor(row_factory=dict_row)
            return cur.execute("SELECT * FROM metadata WHERE photo_id = %s", (photo_id,)).fetchone()

    # -- the queue ---------------------------------------------------------------------------

    def claim(
        self,
        worker: str,
        scope: Scope,
        stages: Sequence[str],
        dependencies: dict[str, Sequence[str]],
        limit: int,
    ) -> list[Claim]:
        """Atomically take up to `limit` pending (photo, stage) rows whose dependencies are complete.

        Rows come in photo order, earlier stages first, so each photo moves through the pipeline
        while its files are still warm in the page cache.
        """
        dep_stage = [s for s in stages for _ in dependencies.get(s, ())]
        dep_on = [d for s in stages for d in dependencies.get(s, ())]
        with self.db.autocommit() as conn:
            rows = conn.execute(
                """WITH candidate AS (
                       SELECT ps.photo_id, ps.stage
                       FROM processing_status ps JOIN photo p ON p.id = ps.photo_id
                       WHERE ps.status = 'pending' AND ps.stage = ANY(%(stages)s)
                         AND p.collection_id = %(collection)s
                         AND (%(pattern)s::text IS NULL OR p.filename LIKE %(pattern)s)
                         AND NOT EXISTS (
                             SELECT 1 FROM unnest(%(dep_stage)s::text[], %(dep_on)s::text[]) AS d(stage, dep)
                             WHERE d.stage = ps.stage AND NOT EXISTS (
                                 SELECT 1 FROM processing_status x
                                 WHERE x.photo_id = ps.photo_id AND x.stage = d.dep AND x.status = 'completed'))
                       ORDER BY ps.photo_id, array_position(%(stages)s::text[], ps.stage)
                       LIMIT %(limit)s
                       FOR UPDATE OF ps SKIP LOCKED)
                   UPDATE processing_status ps
                   SET status = 'processing', claimed_by = %(worker)s, claimed_at = now(),
                       attempts = ps.attempts + 1, updated_at = now()
                   FROM candidate
                   WHERE ps.photo_id = candidate.photo_id AND ps.stage = candidate.stage
                   RETURNING ps.photo_id, ps.stage, ps.attempts""",
                {
                    "stages": list(stages),
                    "collection": scope.collection_id,
                    "pattern": scope.like_pattern,
                    "dep_stage": dep_stage,
                    "dep_on": dep_on,
                    "limit": limit,
                    "worker": worker,
                },
            ).fetchall()
        rows.sort(key=lambda r: (r[0], list(stages).index(r[1])))
        return [Claim(photo_id=r[0], stage=r[1], attempts=r[2]) for r in rows]

    def finish(self, worker: str, claim: Claim, error: str | None = None) -> bool:
        """Mark a claim completed (or failed with `error`). False when the claim was lost meanwhile."""
        status = "failed" if error is not None else "completed"
        with self.db.autocommit() as conn:
            cur = conn.execute(
                """UPDATE processing_status SET status = %s, error_message = %s, processed_at = now(),
                       claimed_by = NULL, claimed_at = NULL, updated_at = now()
                   WHERE photo_id = %s AND stage = %s AND status = 'processing' AND claimed_by = %s""",
                (status, error, claim.photo_id, claim.stage, worker),
            )
            return cur.rowcount == 1

    def release_claims(self, workers: Iterable[str]) -> int:
        """Put the 'processing' rows of the given (dead) workers back to pending."""
        workers = list(workers)
        if not workers:
            return 0
        with self.db.autocommit() as conn:
            return conn.execute(
                """UPDATE processing_status SET status = 'pending', claimed_by = NULL, claimed_at = NULL,
                       updated_at = now()
                   WHERE status = 'processing' AND claimed_by = ANY(%s)""",
                (workers,),
            ).rowcount

    def release_claims_of(self, worker: str, claims: Sequence[Claim]) -> int:
        """Hand back claims this worker took but will not run (the run is stopping)."""
        if not claims:
            return 0
        with self.db.autocommit() as conn:
            return conn.execute(
                """UPDATE processing_status ps SET status = 'pending', claimed_by = NULL, claimed_at = NULL,
                       attempts = greatest(ps.attempts - 1, 0), updated_at = now()
                   FROM unnest(%s::bigint[], %s::text[]) AS c(photo_id, stage)
                   WHERE ps.photo_id = c.photo_id AND ps.stage = c.stage
                     AND ps.status = 'processing' AND ps.claimed_by = %s""",
                ([c.photo_id for c in claims], [c.stage for c in claims], worker),
            ).rowcount

    def release_expired_claims(self, lease_seconds: int) -> int:
        with self.db.autocommit() as conn:
            return conn.execute(
                """UPDATE processing_status SET status = 'pending', claimed_by = NULL, claimed_at = NULL,
                       updated_at = now()
                   WHERE status = 'processing' AND claimed_at < now() - make_interval(secs => %s)""",
                (lease_seconds,),
            ).rowcount

    def claim_holders(self, host_prefix: str) -> list[str]:
        with self.db.autocommit() as conn:
            rows = conn.execute(
                """SELECT DISTINCT claimed_by FROM processing_status
                   WHERE status = 'processing' AND claimed_by LIKE %s""",
                (host_prefix.replace("%", "\\%").replace("_", "\\_") + "%",),
            ).fetchall()
        return [r[0] for r in rows]

    def requeue_failed(self, scope: Scope, stages: Sequence[str]) -> int:
        with self.db.autocommit() as conn:
            return conn.execute(
                """UPDATE processing_status ps SET status = 'pending', updated_at = now()
                   FROM photo p
                   WHERE p.id = ps.photo_id AND ps.status = 'failed' AND ps.stage = ANY(%s)
                     AND p.collection_id = %s AND (%s::text IS NULL OR p.filename LIKE %s)""",
                (list(stages), scope.collection_id, scope.like_pattern, scope.like_pattern),
            ).rowcount

    def work_in_flight(self, scope: Scope, stages: Sequence[str]) -> bool:
        """Whether any worker anywhere still holds a claim in scope (it may unlock dependent stages)."""
        with self.db.autocommit() as conn:
            row = conn.execute(
                """SELECT EXISTS (
                       SELECT 1 FROM processing_status ps JOIN photo p ON p.id = ps.photo_id
                       WHERE ps.status = 'processing' AND ps.stage = ANY(%s) AND p.collection_id = %s
                         AND (%s::text IS NULL OR p.filename LIKE %s))""",
                (list(stages), scope.collection_id, scope.like_pattern, scope.like_pattern),
            ).fetchone()
        return bool(row and row[0])

    def stage_counts(self, scope: Scope, stages: Sequence[str]) -> dict[str, StageCounts]:
        with self.db.autocommit() as conn:
            rows = conn.execute(
                """SELECT ps.stage, ps.status, count(*) FROM processing_status ps JOIN photo p ON p.id = ps.photo_id
                   WHERE ps.stage = ANY(%s) AND p.collection_id = %s
                     AND (%s::text IS NULL OR p.filename LIKE %s)
                   GROUP BY ps.stage, ps.status""",
                (list(stages), scope.collection_id, scope.like_pattern, scope.like_pattern),
            ).fetchall()
        raw: dict[str, dict[str, int]] = {s: {} for s in stages}
        for stage, status, count in rows:
            raw[stage][status] = count
        return {s: StageCounts(**raw[s]) for s in stages}

    def recent_errors(self, scope: Scope, stages: Sequence[str], limit: int = 5) -> list[StageError]:
        with self.db.autocommit() as conn:
            rows = conn.execute(
                """SELECT p.id, p.filename, ps.stage, ps.error_message, ps.processed_at
                   FROM processing_status ps JOIN photo p ON p.id = ps.photo_id
                   WHERE ps.status = 'failed' AND ps.stage = ANY(%s) AND p.collection_id = %s
                     AND (%s::text IS NULL OR p.filename LIKE %s)
                   ORDER BY ps.processed_at DESC NULLS LAST, p.id LIMIT %s""",
                (list(stages), scope.collection_id, scope.like_pattern, scope.like_pattern, limit),
            ).fetchall()
        return [StageError(*r) for r in rows]
