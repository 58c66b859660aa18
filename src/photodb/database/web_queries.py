"""What `photodb web` reads besides the people views: face boxes for thumbnails and a few faces per
cluster. Read-only statements."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from photodb.database.people_queries import PHOTO_PATH, display_name
from photodb.search.filters import FACE_SHOWN


@dataclass(frozen=True)
class FaceBox:
    detection_id: int
    normalized_path: str | None
    x: float
    y: float
    width: float
    height: float


def face_box(conn: psycopg.Connection, detection_id: int) -> FaceBox | None:
    """The face box of a detection (pixels of the normalized PNG) and that PNG's path under IMG_PATH."""
    row = conn.execute(
        """SELECT d.id, ph.normalized_path, d.face_bbox_x, d.face_bbox_y, d.face_bbox_width, d.face_bbox_height
           FROM person_detection d JOIN photo ph ON ph.id = d.photo_id
           WHERE d.id = %s AND d.face_bbox_x IS NOT NULL""",
        (detection_id,),
    ).fetchone()
    return FaceBox(*row) if row else None


def cluster_faces(conn: psycopg.Connection, cluster_ids: Sequence[int], per_cluster: int) -> dict[int, list[int]]:
    """Up to `per_cluster` face ids of each cluster, the medoid first, then by id."""
    rows = conn.execute(
        """SELECT c.id, f.id FROM cluster c
           CROSS JOIN LATERAL (
               SELECT d.id FROM person_detection d WHERE d.cluster_id = c.id
               ORDER BY d.id = c.medoid_detection_id DESC, d.id LIMIT %(n)s) f
           WHERE c.id = ANY(%(c)s) ORDER BY c.id""",
        {"c": list(cluster_ids), "n": per_cluster},
    ).fetchall()
    faces: dict[int, list[int]] = {}
    for cluster_id, face_id in rows:
        faces.setdefault(cluster_id, []).append(face_id)
    return faces


@dataclass(frozen=True)
class TimelineFace:
    detection_id: int
    photo_id: int
    captured_at: datetime | None
    age_estimate: float | None
    estimated_year: float | None  # no captured_at: the year estimated from faces, if any
    estimated_stddev: float | None


def person_timeline(conn: psycopg.Connection, person_id: int, limit: int, offset: int = 0) -> list[TimelineFace]:
    """One face per photo of a person (its own person_id, else its cluster's: the rule of
    people.dates.person_ages), oldest first by capture date or else estimated year, undated last."""
    rows = conn.execute(
        """SELECT f.id, f.photo_id, m.captured_at, f.age_estimate, e.estimated_year, e.stddev_years
           FROM (SELECT DISTINCT ON (photo_id) id, photo_id, age_estimate
                 FROM (SELECT d.id, d.photo_id, d.age_estimate FROM cluster c
                       JOIN person_detection d ON d.cluster_id = c.id WHERE c.person_id = %(p)s AND d.person_id IS NULL
                       UNION ALL
                       SELECT d.id, d.photo_id, d.age_estimate FROM person_detection d WHERE d.person_id = %(p)s) faces
                 ORDER BY photo_id, id) f
           LEFT JOIN metadata m ON m.photo_id = f.photo_id
           LEFT JOIN photo_date_estimate e ON e.photo_id = f.photo_id AND m.captured_at IS NULL
           ORDER BY COALESCE(EXTRACT(YEAR FROM m.captured_at) + (EXTRACT(DOY FROM m.captured_at) - 1) / 366.0,
                             e.estimated_year) NULLS LAST, m.captured_at, f.photo_id
           LIMIT %(n)s OFFSET %(o)s""",
        {"p": person_id, "n": limit, "o": offset},
    ).fetchall()
    return [TimelineFace(*row) for row in rows]


@dataclass(frozen=True)
class ClusterSpread:
    cluster_id: int
    faces: int
    person_id: int | None
    mean_distance: float
    outliers: list[tuple[int, float]]  # (face id, cosine distance to the centroid), farthest first


def cluster_spreads(
    conn: psycopg.Connection, collection_id: int | None, *, limit: int, outliers: int
) -> list[ClusterSpread]:
    """The clusters whose faces lie farthest from their centroid on average (cosine distance), each
    with its farthest faces: the clusters most likely to hold someone else, worst first. It reads
    every clustered face's embedding once (a page a user opens, not a hot path)."""
    rows = conn.execute(
        """WITH spread AS (
               SELECT c.id, c.face_count, c.person_id, avg(e.embedding <=> c.centroid_sum) AS mean_distance
               FROM cluster c
               JOIN person_detection d ON d.cluster_id = c.id
               JOIN face_embedding e ON e.person_detection_id = d.id AND e.embedding_model = c.embedding_model
               WHERE c.centroid_sum IS NOT NULL AND NOT c.hidden
                 AND (%(c)s::bigint IS NULL OR c.collection_id = %(c)s)
               GROUP BY c.id ORDER BY mean_distance DESC, c.id LIMIT %(n)s)
           SELECT s.id, s.face_count, s.person_id, s.mean_distance,
                  array(SELECT ARRAY[d.id, (e.embedding <=> c.centroid_sum)]::float8[]
                        FROM person_detection d
                        JOIN face_embedding e ON e.person_detection_id = d.id AND e.embedding_model = c.embedding_model
                        WHERE d.cluster_id = s.id
                        ORDER BY e.embedding <=> c.centroid_sum DESC, d.id LIMIT %(k)s)
           FROM spread s JOIN cluster c ON c.id = s.id
           ORDER BY s.mean_distance DESC, s.id""",
        {"c": collection_id, "n": limit, "k": outliers},
    ).fetchall()
    return [
        ClusterSpread(r[0], r[1], r[2], float(r[3]), [(int(face), float(distance)) for face, distance in r[4]])
        for r in rows
    ]


def normalized_path(conn: psycopg.Connection, photo_id: int) -> str | None:
    """A photo's normalized PNG, relative to IMG_PATH."""
    row = conn.execute("SELECT normalized_path FROM photo WHERE id = %s", (photo_id,)).fetchone()
    return row[0] if row else None


def photo_detail(conn: psycopg.Connection, photo_id: int) -> dict[str, Any] | None:
    """One photo for its page: path, date (else the year estimated from faces), camera, place, LLM
    description, tags and faces; a face of a hidden person or cluster is shown without who it is."""
    row = conn.execute(
        f"""SELECT ph.id, {PHOTO_PATH}, ph.normalized_path, m.captured_at, m.camera_make, m.camera_model,
                   pl.city, pl.region, pl.country,
                   (SELECT l.description FROM llm_analysis l WHERE l.photo_id = ph.id AND l.description IS NOT NULL
                    ORDER BY l.processed_at DESC LIMIT 1),
                   e.estimated_year, e.stddev_years, ph.normalized_width, ph.normalized_height
            FROM photo ph JOIN collection col ON col.id = ph.collection_id
            LEFT JOIN metadata m ON m.photo_id = ph.id LEFT JOIN photo_place pl ON pl.photo_id = ph.id
            LEFT JOIN photo_date_estimate e ON e.photo_id = ph.id AND m.captured_at IS NULL
            WHERE ph.id = %s""",  # noqa: S608 (only a constant is formatted in)
        (photo_id,),
    ).fetchone()
    if row is None:
        return None
    tags = conn.execute(
        "SELECT DISTINCT category, label FROM photo_tag WHERE photo_id = %s ORDER BY 1, 2", (photo_id,)
    ).fetchall()
    faces = conn.execute(
        sql.SQL(
            """SELECT d.id, d.cluster_id, p.id, p.first_name, p.last_name, p.named, d.age_estimate,
                      NOT ({shown}), d.face_bbox_x, d.face_bbox_y, d.face_bbox_width, d.face_bbox_height
               FROM person_detection d LEFT JOIN cluster c ON c.id = d.cluster_id
               LEFT JOIN person p ON p.id = COALESCE(d.person_id, c.person_id)
               WHERE d.photo_id = %s AND d.face_bbox_x IS NOT NULL ORDER BY d.face_bbox_x, d.id"""
        ).format(shown=FACE_SHOWN),
        (photo_id,),
    ).fetchall()
    camera = " ".join(part for part in (row[4], row[5]) if part)
    return {
        "id": row[0],
        "path": row[1],
        "normalized_path": row[2],
        "captured_at": row[3],
        "estimated_date": None if row[10] is None else estimated_date(row[10], row[11]),
        "camera": camera or None,
        "place": ", ".join(part for part in (row[6], row[7], row[8]) if part) or None,
        "description": row[9],
        "width": row[12],
        "height": row[13],
        "tags": [f"{category}: {label}" for category, label in tags],
        "faces": [
            {
                "id": f[0],
                "hidden": f[7],
                "cluster_id": None if f[7] else f[1],
                "person_id": None if f[7] or f[2] is None else f[2],
                "person": None if f[7] or f[2] is None else display_name(f[2], f[3], f[4], f[5]),
                "age_estimate": round(f[6]) if f[6] is not None else None,
                "box": _box_share(f[8:12], row[12], row[13]),
            }
            for f in faces
        ],
    }


def _box_share(box: Sequence[float], width: int | None, height: int | None) -> dict[str, float] | None:
    """A face box as percentages of the normalized image, to draw it over the photo at any size."""
    if not width or not height:
        return None
    x, y, w, h = box
    return {"left": 100 * x / width, "top": 100 * y / height, "width": 100 * w / width, "height": 100 * h / height}


def estimated_date(year: float, stddev: float) -> str:
    """An estimated capture year as the pages show it, marked as an estimate."""
    return f"about {math.floor(year)} ± {max(1, round(stddev))} years (estimated from faces)"
