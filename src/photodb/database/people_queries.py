"""What `photodb people` shows: persons and clusters with their counts, ages and sample photos.

Read-only statements. A face belongs to a person through its cluster's person_id, or through its
own person_id when it has no cluster (a face placed on a person by hand). An age range is the
youngest and oldest of the faces' own age estimates (read with the faces from one covering index,
so a page of the biggest persons costs about one scan of the faces); one person's page also gives
the ages at capture from the person's estimated birth year and their dated photos. Paths are the
collection's root joined with the photo's relative filename.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg


def _path_of(root_path: str) -> str:
    """SQL for the path of photo `ph` in a collection whose root is the SQL expression `root_path`."""
    return f"CASE WHEN {root_path} IS NULL THEN ph.filename ELSE {root_path} || '/' || ph.filename END"


_PATH = _path_of("col.root_path")
#: A photo's path in SQL over `photo ph JOIN collection col` (the web page's photo page reads it too).
PHOTO_PATH = _PATH


@dataclass(frozen=True)
class FaceStats:
    faces: int
    photos: int
    age_min: float | None
    age_max: float | None
    year_min: int | None
    year_max: int | None

    def age_range(self) -> list[int] | None:
        return _age_range(self.age_min, self.age_max)

    def ages_at_capture(self, birth_year: int | None) -> list[int] | None:
        """[youngest, oldest] age in the dated photos: capture years minus the estimated birth year."""
        if birth_year is not None and self.year_min is not None and self.year_max is not None:
            return [max(0, self.year_min - birth_year), max(0, self.year_max - birth_year)]
        return None


def display_name(person_id: int, first: str | None, last: str | None, named: bool) -> str:
    """A person's name, or 'Unknown #id' until someone names them (person.named)."""
    name = " ".join(part for part in (first, last) if part)
    return name if named and name else f"Unknown #{person_id}"


def person_face_stats(conn: psycopg.Connection, person_id: int) -> FaceStats:
    """Faces, photos, ages and capture years of one person: its clusters' faces and its own.

    One statement: the faces come from idx_person_detection_cluster_faces per cluster (an
    index-only scan) and from idx_person_detection_person_photo for its own, each photo's capture year from
    idx_metadata_photo_captured (index-only too)."""
    row = conn.execute(
        f"""SELECT count(*)::int, count(DISTINCT f.photo_id)::int, min(f.age_estimate), max(f.age_estimate),
                   min(extract(year FROM m.captured_at))::int, max(extract(year FROM m.captured_at))::int
            FROM ({_ONE_PERSON_FACES}) f LEFT JOIN metadata m ON m.photo_id = f.photo_id""",  # noqa: S608
        {"p": person_id},
    ).fetchone()
    assert row is not None
    return FaceStats(*row)


def _faces_of_person(person: str, has_own: str = "TRUE") -> str:
    """SQL for the faces (id, photo_id, age_estimate) of the person `person` (an SQL expression):
    its clusters' faces and its own (placed on it by hand, without a cluster), the latter looked up
    only where `has_own` holds."""
    return f"""
    SELECT d.id, d.photo_id, d.age_estimate FROM cluster c JOIN person_detection d ON d.cluster_id = c.id
    WHERE c.person_id = {person}
    UNION ALL
    SELECT d.id, d.photo_id, d.age_estimate FROM person_detection d
    WHERE {has_own} AND d.person_id = {person} AND d.cluster_id IS NULL"""  # noqa: S608 (constants only)


_ONE_PERSON_FACES = _faces_of_person("%(p)s")


_PERSON_COLUMNS = """p.id, p.collection_id, p.first_name, p.last_name, p.auto_created, p.hidden,
    p.estimated_birth_year, p.gender, p.gender_confidence, p.created_by, p.named_by, p.named"""


def _person_dict(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": row[0],
        "collection_id": row[1],
        "name": display_name(row[0], row[2], row[3], row[11]),
        "first_name": row[2],
        "last_name": row[3],
        "auto_created": row[4],
        "hidden": row[5],
        "estimated_birth_year": row[6],
        "gender": row[7],
        "gender_confidence": row[8],
        "created_by": row[9],
        "named_by": row[10],
    }


def _listing_rows(
    conn: psycopg.Connection, page: str, faces: str, params: dict[str, Any]
) -> list[tuple[Sequence[Any], int, dict[str, Any]]]:
    """Each row of `_listing`: the page's own columns, its faces counted, and its photos, age range
    and sample path as the listings show them."""
    rows = conn.execute(_listing(page, faces), params).fetchall()  # type: ignore[arg-type]
    return [
        (row[:-5], row[-5], {"photos": row[-4], "age_range": _age_range(row[-3], row[-2]), "sample_path": row[-1]})
        for row in rows
    ]


def _listing(page: str, faces: str) -> str:
    """One statement for a listing: `page` (the rows shown, with `id`, `sample` (a face id),
    `root_path` of their collection and `total`, in their order as `ord`) and `faces` (id,
    photo_id, age_estimate of the faces of the page row `page.id`) give each row's faces, photos,
    ages and sample photo path.

    One round trip, no id lists sent back and forth. Each row's faces are aggregated on their own
    (LATERAL: an index-only scan of idx_person_detection_cluster_faces per cluster, in photo order,
    so a cluster's distinct photos are counted without a sort), which beats one aggregate over
    every face of the page: at 100k faces that sorted 80-90k (owner, photo) rows, spilling to
    disk for the persons. The sample photo is found in the same pass (the sample face's photo, or
    the row's first photo when the sample is no longer one of its faces), so a row shown costs one
    more primary-key lookup: its photo's filename."""
    return f"""
        WITH page AS MATERIALIZED ({page})
        SELECT page.*, s.faces, s.photos, s.age_min, s.age_max,
               (SELECT {_path_of("page.root_path")} FROM photo ph WHERE ph.id = s.sample_photo)
        FROM page CROSS JOIN LATERAL (
            SELECT count(*)::int AS faces, count(DISTINCT photo_id)::int AS photos,
                   min(age_estimate) AS age_min, max(age_estimate) AS age_max,
                   coalesce(min(photo_id) FILTER (WHERE id = page.sample), min(photo_id)) AS sample_photo
            FROM ({faces}) f) s
        ORDER BY page.ord"""  # noqa: S608 (only constants are formatted in)


def _age_range(age_min: float | None, age_max: float | None) -> list[int] | None:
    """[youngest, oldest] of the faces' age estimates."""
    return None if age_min is None or age_max is None else [round(age_min), round(age_max)]


_PERSON_PAGE = f"""
    SELECT {_PERSON_COLUMNS}, count(c.id) AS clusters,
           (array_agg(coalesce(c.medoid_detection_id, c.representative_detection_id)
                      ORDER BY c.face_count DESC, c.id) FILTER (WHERE c.id IS NOT NULL))[1] AS sample,
           count(*) OVER () AS total,
           row_number() OVER (ORDER BY coalesce(sum(c.face_count), 0) + coalesce(min(o.n), 0) DESC, p.id) AS ord,
           col.root_path, coalesce(min(o.n), 0) AS own_faces
    FROM person p JOIN collection col ON col.id = p.collection_id
    LEFT JOIN cluster c ON c.person_id = p.id
    LEFT JOIN (SELECT d.person_id, count(*) AS n FROM person_detection d
               WHERE d.person_id IS NOT NULL AND d.cluster_id IS NULL GROUP BY d.person_id) o ON o.person_id = p.id
    WHERE (%(c)s::bigint IS NULL OR p.collection_id = %(c)s) AND (%(all)s OR NOT p.hidden)
    GROUP BY p.id, col.id ORDER BY ord LIMIT %(n)s OFFSET %(o)s"""  # noqa: S608 (only constants are formatted in)

#: A listed person's faces; its own looked up only when it has some (`own_faces` of the page).
_PERSON_FACES = _faces_of_person("page.id", has_own="page.own_faces > 0")


def list_persons(
    conn: psycopg.Connection,
    collection_id: int | None,
    *,
    include_hidden: bool,
    limit: int | None,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """The persons with most faces (hidden ones only with include_hidden), up to `limit` (None:
    all) from `offset` on, and how many there are. Ordering uses the stored cluster face counts; photos and ages
    are computed for the persons shown only, so a page costs the same in any library."""
    rows = _listing_rows(
        conn, _PERSON_PAGE, _PERSON_FACES, {"c": collection_id, "all": include_hidden, "n": limit, "o": offset}
    )
    persons = [_person_dict(row) | {"clusters": row[12], "faces": faces} | shown for row, faces, shown in rows]
    return persons, rows[0][0][14] if rows else _count_persons(conn, collection_id, include_hidden)


def _count_persons(conn: psycopg.Connection, collection_id: int | None, include_hidden: bool) -> int:
    row = conn.execute(
        """SELECT count(*) FROM person p
           WHERE (%(c)s::bigint IS NULL OR p.collection_id = %(c)s) AND (%(all)s OR NOT p.hidden)""",
        {"c": collection_id, "all": include_hidden},
    ).fetchone()
    return int(row[0]) if row else 0


_CLUSTER_PAGE = """
    SELECT c.id, c.collection_id, c.embedding_model, c.face_count, c.person_id, c.verified,
           c.verified_by, c.hidden, c.person_linked_by,
           coalesce(c.medoid_detection_id, c.representative_detection_id) AS sample,
           p.first_name, p.last_name, p.named, count(*) OVER () AS total,
           row_number() OVER (ORDER BY c.face_count DESC, c.id) AS ord, col.root_path
    FROM cluster c JOIN collection col ON col.id = c.collection_id LEFT JOIN person p ON p.id = c.person_id
    WHERE (%(c)s::bigint IS NULL OR c.collection_id = %(c)s)
      AND (%(p)s::bigint IS NULL OR c.person_id = %(p)s)
      AND (%(k)s::bigint IS NULL OR c.id = %(k)s)
      AND (%(all)s OR (NOT c.hidden AND NOT coalesce(p.hidden, false)))
    ORDER BY ord LIMIT %(n)s"""

_CLUSTER_FACES = """
    SELECT d.id, d.photo_id, d.age_estimate FROM person_detection d WHERE d.cluster_id = page.id"""


def list_clusters(
    conn: psycopg.Connection,
    collection_id: int | None,
    *,
    include_hidden: bool,
    person_id: int | None = None,
    cluster_id: int | None = None,
    limit: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Clusters (of one person, one cluster, or all), most faces first, up to `limit` (None: all),
    and how many there are. Without include_hidden, hidden clusters and clusters of hidden persons
    are left out. Photos and ages are computed for the clusters shown only."""
    rows = _listing_rows(
        conn,
        _CLUSTER_PAGE,
        _CLUSTER_FACES,
        {"c": collection_id, "p": person_id, "k": cluster_id, "all": include_hidden, "n": limit},
    )
    clusters = [
        {
            "id": row[0],
            "collection_id": row[1],
            "embedding_model": row[2],
            "faces": row[3],
            "person_id": row[4],
            "person": display_name(row[4], row[10], row[11], row[12]) if row[4] is not None else None,
            "verified": row[5],
            "verified_by": row[6],
            "hidden": row[7],
            "person_linked_by": row[8],
        }
        | shown
        for row, _, shown in rows
    ]
    return clusters, rows[0][0][13] if rows else 0


def person_detail(conn: psycopg.Connection, person_id: int, *, photo_limit: int) -> dict[str, Any] | None:
    """One person: its clusters, face and photo counts, photo paths (up to photo_limit), ages."""
    row = conn.execute(f"SELECT {_PERSON_COLUMNS} FROM person p WHERE p.id = %s", (person_id,)).fetchone()  # noqa: S608
    if row is None:
        return None
    s = person_face_stats(conn, person_id)
    clusters, _ = list_clusters(conn, None, include_hidden=True, person_id=person_id)
    photos = conn.execute(
        f"""SELECT {_PATH} FROM photo ph JOIN collection col ON col.id = ph.collection_id
            WHERE ph.id IN (SELECT f.photo_id FROM ({_ONE_PERSON_FACES}) f)
            ORDER BY ph.id LIMIT %(n)s""",  # noqa: S608
        {"p": person_id, "n": photo_limit},
    ).fetchall()
    direct = conn.execute(
        "SELECT id FROM person_detection WHERE person_id = %s AND cluster_id IS NULL ORDER BY id", (person_id,)
    ).fetchall()
    return _person_dict(row) | {
        "faces": s.faces,
        "photos": s.photos,
        "age_range": s.age_range(),
        "ages_at_capture": s.ages_at_capture(row[6]),
        "clusters": clusters,
        "faces_without_cluster": [r[0] for r in direct],
        "photo_paths": [r[0] for r in photos],
        "sample_paths": [c["sample_path"] for c in clusters if c["sample_path"]][:5],
    }


def cluster_detail(conn: psycopg.Connection, cluster_id: int, *, face_limit: int) -> dict[str, Any] | None:
    """One cluster and its faces (ids for chaining, up to face_limit; 0: all) with their photos."""
    found, _ = list_clusters(conn, None, include_hidden=True, cluster_id=cluster_id)
    if not found:
        return None
    faces = conn.execute(
        f"""SELECT d.id, {_PATH}, d.cluster_status, d.cluster_confidence, d.age_estimate, d.gender,
                   d.assigned_by
            FROM person_detection d JOIN photo ph ON ph.id = d.photo_id
            JOIN collection col ON col.id = ph.collection_id
            WHERE d.cluster_id = %s ORDER BY d.id LIMIT %s""",  # noqa: S608
        (cluster_id, face_limit or None),
    ).fetchall()
    keys = ("id", "photo_path", "status", "confidence", "age_estimate", "gender", "assigned_by")
    return found[0] | {"face_list": [dict(zip(keys, f, strict=True)) for f in faces]}


def face_detail(conn: psycopg.Connection, detection_id: int) -> dict[str, Any] | None:
    """One face: its photo, cluster, person, status, who placed it, and its must/cannot-links."""
    row = conn.execute(
        f"""SELECT d.id, {_PATH}, d.cluster_id, coalesce(c.person_id, d.person_id), d.cluster_status,
                   d.assigned_by, fe.embedding_model, ph.collection_id, d.age_estimate, d.gender,
                   d.face_bbox_x IS NOT NULL
            FROM person_detection d JOIN photo ph ON ph.id = d.photo_id
            JOIN collection col ON col.id = ph.collection_id
            LEFT JOIN cluster c ON c.id = d.cluster_id
            LEFT JOIN face_embedding fe ON fe.person_detection_id = d.id
            WHERE d.id = %s""",  # noqa: S608
        (detection_id,),
    ).fetchone()
    if row is None:
        return None
    keys = (
        "id",
        "photo_path",
        "cluster_id",
        "person_id",
        "status",
        "assigned_by",
        "embedding_model",
        "collection_id",
        "age_estimate",
        "gender",
        "is_face",
    )
    return dict(zip(keys, row, strict=True))
