"""Faces as clustering reads them: loading a collection's embeddings, constraints, and imports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import psycopg.sql

FACES_SQL = """
    SELECT pd.id, fe.embedding, pd.cluster_id, pd.cluster_status, pd.photo_id
    FROM face_embedding fe
    JOIN person_detection pd ON pd.id = fe.person_detection_id
    JOIN photo p ON p.id = pd.photo_id
    WHERE p.collection_id = %s AND fe.embedding_model = %s
    ORDER BY pd.id
"""


@dataclass
class FaceSet:
    """The faces of one collection and embedding model, as bootstrap sees them."""

    ids: np.ndarray  # int64
    embeddings: np.ndarray  # float32 (n, 512)
    cluster_ids: np.ndarray  # int64, -1 for none
    statuses: list[str | None]
    photo_ids: np.ndarray  # int64: faces of one photo are different people


@dataclass(frozen=True)
class FaceRow:
    """One detection locked for incremental assignment."""

    id: int
    collection_id: int
    embedding_model: str
    embedding: np.ndarray
    cluster_id: int | None
    status: str | None


def array_of(value: Any) -> np.ndarray:
    """pgvector hands back numpy arrays in text mode and Vector objects in binary mode."""
    return value.to_numpy() if hasattr(value, "to_numpy") else np.asarray(value)


def embedding_models(conn: psycopg.Connection, collection_id: int) -> dict[str, int]:
    rows = conn.execute(
        """SELECT fe.embedding_model, count(*) FROM face_embedding fe
           JOIN person_detection pd ON pd.id = fe.person_detection_id
           JOIN photo p ON p.id = pd.photo_id
           WHERE p.collection_id = %s GROUP BY 1 ORDER BY 1""",
        (collection_id,),
    ).fetchall()
    return {model: count for model, count in rows}


def collection_id_by_name(conn: psycopg.Connection, name: str) -> int | None:
    row = conn.execute("SELECT id FROM collection WHERE name = %s", (name,)).fetchone()
    return row[0] if row else None


def collection_ids(conn: psycopg.Connection) -> list[int]:
    return [row[0] for row in conn.execute("SELECT id FROM collection ORDER BY id").fetchall()]


STORED_DIM = 512


def load_faces(conn: psycopg.Connection, collection_id: int, model: str) -> FaceSet:
    """Stream the faces (binary COPY) into one preallocated array: no per-row vector objects and
    no whole result held in memory, which at 100k faces would double the bootstrap's peak RSS."""
    row = conn.execute(
        """SELECT count(*) FROM face_embedding fe
           JOIN person_detection pd ON pd.id = fe.person_detection_id
           JOIN photo p ON p.id = pd.photo_id
           WHERE p.collection_id = %s AND fe.embedding_model = %s""",
        (collection_id, model),
    ).fetchone()
    assert row is not None
    # Vectors are read at their stored width (models with fewer dimensions are zero-padded to it),
    # the same width incremental assignment reads, so the run's PCA applies to both.
    size, dim = int(row[0]), STORED_DIM
    ids = np.empty(size, np.int64)
    clusters = np.full(size, -1, np.int64)
    photos = np.zeros(size, np.int64)
    embeddings = np.zeros((size, dim), np.float32)
    statuses: list[str | None] = []
    count = 0
    query = psycopg.sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(
        psycopg.sql.SQL(FACES_SQL.replace("%s", "{}")).format(collection_id, model)
    )
    with conn.cursor() as cur, cur.copy(query) as copy:
        copy.set_types(["int8", "vector", "int8", "text", "int8"])
        for det_id, embedding, cluster_id, status, photo_id in copy.rows():
            if count == size:  # faces added since the count: grow
                ids, clusters = np.resize(ids, 2 * size + 1), np.resize(clusters, 2 * size + 1)
                photos = np.resize(photos, 2 * size + 1)
                embeddings = np.resize(embeddings, (2 * size + 1, dim))
                size = 2 * size + 1
            ids[count] = det_id
            embeddings[count] = array_of(embedding)
            clusters[count] = -1 if cluster_id is None else cluster_id
            statuses.append(status)
            photos[count] = photo_id
            count += 1
    return FaceSet(ids[:count], embeddings[:count], clusters[:count], statuses, photos[:count])


def load_links(conn: psycopg.Connection, table: str, collection_id: int, model: str) -> list[tuple[int, int]]:
    """must_link or cannot_link pairs whose both faces belong to this collection and model."""
    if table not in ("must_link", "cannot_link"):
        raise ValueError(table)
    rows = conn.execute(
        f"""SELECT l.detection_id_1, l.detection_id_2 FROM {table} l
            JOIN face_embedding f1 ON f1.person_detection_id = l.detection_id_1
            JOIN face_embedding f2 ON f2.person_detection_id = l.detection_id_2
            JOIN person_detection d1 ON d1.id = l.detection_id_1
            JOIN photo p1 ON p1.id = d1.photo_id
            WHERE p1.collection_id = %s AND f1.embedding_model = %s AND f2.embedding_model = %s""",  # noqa: S608
        (collection_id, model, model),
    ).fetchall()
    return [(a, b) for a, b in rows]


def face_models(conn: psycopg.Connection, detection_ids: Sequence[int]) -> dict[int, tuple[int, str, np.ndarray]]:
    """(collection, model, embedding) per detection, read without locks for the tier-1 batch."""
    with conn.cursor(binary=True) as cur:
        cur.execute(
            """SELECT pd.id, p.collection_id, fe.embedding_model, fe.embedding
               FROM person_detection pd
               JOIN face_embedding fe ON fe.person_detection_id = pd.id
               JOIN photo p ON p.id = pd.photo_id WHERE pd.id = ANY(%s)""",
            (list(detection_ids),),
        )
        return {r[0]: (r[1], r[2], array_of(r[3]).astype(np.float32)) for r in cur}


def insert_faces(
    conn: psycopg.Connection, collection_id: int, embeddings: np.ndarray, model: str, *, photo_prefix: str = "face"
) -> list[int]:
    """Import embeddings computed elsewhere (benchmarks, tests): one photo and one face each."""
    start = conn.execute("SELECT coalesce(max(id), 0) FROM photo").fetchone()
    assert start is not None
    names = [f"{photo_prefix}-{start[0] + i}.jpg" for i in range(len(embeddings))]
    photo_ids = [
        r[0]
        for r in conn.execute(
            """INSERT INTO photo (collection_id, filename) SELECT %s, unnest(%s::text[])
               RETURNING id""",
            (collection_id, names),
        ).fetchall()
    ]
    detection_ids = [
        r[0]
        for r in conn.execute(
            """INSERT INTO person_detection (photo_id, face_bbox_x, face_bbox_y, face_bbox_width,
                   face_bbox_height, face_confidence)
               SELECT unnest(%s::bigint[]), 0, 0, 10, 10, 0.9 RETURNING id""",
            (photo_ids,),
        ).fetchall()
    ]
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY face_embedding (person_detection_id, embedding_model, embedding_dim, embedding)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["int8", "text", "int4", "vector"])
        for det_id, vector in zip(detection_ids, embeddings, strict=True):
            copy.write_row((det_id, model, vector.shape[0], np.asarray(vector, np.float32)))
    return detection_ids


def lock_unassigned(conn: psycopg.Connection, detection_ids: Sequence[int]) -> list[int]:
    """Of these faces, those still in the unassigned pool (no cluster, status 'unassigned', no
    quality issue), locked until the transaction ends."""
    rows = conn.execute(
        """SELECT id FROM person_detection
           WHERE id = ANY(%s) AND cluster_id IS NULL AND cluster_status = 'unassigned' AND quality_issue IS NULL
           ORDER BY id FOR UPDATE""",
        (list(detection_ids),),
    ).fetchall()
    return [r[0] for r in rows]


def join_clusters(conn: psycopg.Connection, detection_ids: Sequence[int], cluster_ids: Sequence[int]) -> None:
    """Put locked unassigned faces into clusters whose sums and counts already hold them."""
    conn.execute(
        """UPDATE person_detection d SET cluster_id = j.cluster_id, cluster_status = 'auto',
               cluster_confidence = NULL, unassigned_since = NULL
           FROM unnest(%s::bigint[], %s::bigint[]) AS j(id, cluster_id) WHERE d.id = j.id""",
        (list(detection_ids), list(cluster_ids)),
    )
