"""SQL of persons: creating, linking clusters, merging. Functions take a connection, so callers
compose one transaction; the caller follows the lock order of database.clustering.locks, where
person rows are step 5 (after clusters), taken here with `lock_persons`.

A face belongs to a person through its cluster's person_id, or through its own person_id (a face
linked by hand without a cluster). `by` records who decided: 'user' for a person's command,
'auto:<task>' for maintenance, so later automatic work can tell a decision it must keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import psycopg

UNKNOWN_NAME = "Unknown"


@dataclass(frozen=True)
class PersonRow:
    id: int
    collection_id: int
    first_name: str | None
    last_name: str | None
    auto_created: bool
    named: bool  # a name a user gave (person.named, migration 0022), not the automatic 'Unknown'
    hidden: bool
    cluster_count: int
    verified_clusters: int


def is_user_decision(by: str | None) -> bool:
    return by is not None and not by.startswith("auto:")


def lock_persons(conn: psycopg.Connection, person_ids: Iterable[int]) -> set[int]:
    """Step 5 of the lock order: these person rows in id order; returns those that exist."""
    ids = sorted(set(person_ids))
    if not ids:
        return set()
    rows = conn.execute("SELECT id FROM person WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (ids,)).fetchall()
    return {r[0] for r in rows}


def get_persons(conn: psycopg.Connection, person_ids: Sequence[int]) -> dict[int, PersonRow]:
    rows = conn.execute(
        """SELECT p.id, p.collection_id, p.first_name, p.last_name, p.auto_created, p.named, p.hidden,
                  count(c.id), count(c.id) FILTER (WHERE c.verified)
           FROM person p LEFT JOIN cluster c ON c.person_id = p.id
           WHERE p.id = ANY(%s) GROUP BY p.id""",
        (list(person_ids),),
    ).fetchall()
    return {r[0]: PersonRow(*r) for r in rows}


def create_person(
    conn: psycopg.Connection,
    collection_id: int,
    *,
    first_name: str | None = UNKNOWN_NAME,
    last_name: str | None = None,
    auto_created: bool,
    by: str,
) -> int:
    row = conn.execute(
        """INSERT INTO person (collection_id, first_name, last_name, auto_created, created_by)
           VALUES (%s, %s, %s, %s, %s) RETURNING id""",
        (collection_id, first_name, last_name, auto_created, by),
    ).fetchone()
    assert row is not None
    return int(row[0])


def link_clusters(conn: psycopg.Connection, person_id: int, cluster_ids: Sequence[int], *, by: str) -> int:
    """Link clusters to a person (the caller holds the cluster and person locks)."""
    cur = conn.execute(
        """UPDATE cluster SET person_id = %s, person_linked_by = %s, person_linked_at = now(), updated_at = now()
           WHERE id = ANY(%s) AND person_id IS DISTINCT FROM %s""",
        (person_id, by, list(cluster_ids), person_id),
    )
    return cur.rowcount


def create_auto_persons(conn: psycopg.Connection, collection_id: int, count: int, *, by: str) -> list[int]:
    """`count` new auto-created 'Unknown' persons in one statement (one per group a task found)."""
    rows = conn.execute(
        """INSERT INTO person (collection_id, first_name, auto_created, created_by)
           SELECT %s, %s, true, %s FROM generate_series(1, %s) RETURNING id""",
        (collection_id, UNKNOWN_NAME, by, count),
    ).fetchall()
    return sorted(r[0] for r in rows)


def link_clusters_to_persons(conn: psycopg.Connection, links: Sequence[tuple[int, int]], *, by: str) -> int:
    """Link each (cluster, person) of `links` in one statement (the caller holds the locks)."""
    if not links:
        return 0
    cur = conn.execute(
        """UPDATE cluster c SET person_id = l.person_id, person_linked_by = %s, person_linked_at = now(),
                  updated_at = now()
           FROM unnest(%s::bigint[], %s::bigint[]) AS l(cluster_id, person_id)
           WHERE c.id = l.cluster_id AND c.person_id IS DISTINCT FROM l.person_id""",
        (by, [c for c, _ in links], [p for _, p in links]),
    )
    return cur.rowcount


def unlink_clusters(conn: psycopg.Connection, cluster_ids: Sequence[int], *, by: str) -> int:
    cur = conn.execute(
        """UPDATE cluster SET person_id = NULL, person_linked_by = %s, person_linked_at = now(), updated_at = now()
           WHERE id = ANY(%s) AND person_id IS NOT NULL""",
        (by, list(cluster_ids)),
    )
    return cur.rowcount


def merge_persons(conn: psycopg.Connection, winner_id: int, loser_id: int, *, by: str) -> None:
    """Move everything of `loser` to `winner` and delete `loser`.

    The caller holds the locks of both persons' clusters and of both persons. A name a person gave
    is never lost: when the winner is unnamed and the loser named, the winner takes the name.
    """
    if winner_id == loser_id:
        raise ValueError("a person cannot be merged into itself")
    conn.execute(
        """UPDATE person w SET first_name = l.first_name, last_name = l.last_name, auto_created = false,
                  named_by = coalesce(l.named_by, l.created_by), updated_at = now()
           FROM person l
           WHERE w.id = %s AND l.id = %s AND NOT w.named AND l.named""",
        (winner_id, loser_id),
    )
    conn.execute(
        """UPDATE cluster SET person_id = %s, person_linked_by = %s, person_linked_at = now(), updated_at = now()
           WHERE person_id = %s""",
        (winner_id, by, loser_id),
    )
    conn.execute("UPDATE person_detection SET person_id = %s WHERE person_id = %s", (winner_id, loser_id))
    conn.execute(
        """INSERT INTO cluster_person_cannot_link (cluster_id, person_id, created_by)
           SELECT cluster_id, %s, created_by FROM cluster_person_cannot_link WHERE person_id = %s
           ON CONFLICT (cluster_id, person_id) DO NOTHING""",
        (winner_id, loser_id),
    )
    conn.execute("UPDATE person SET updated_at = now() WHERE id = %s", (winner_id,))
    conn.execute("DELETE FROM person WHERE id = %s", (loser_id,))


def person_cluster_ids(conn: psycopg.Connection, person_ids: Sequence[int]) -> list[int]:
    rows = conn.execute("SELECT id FROM cluster WHERE person_id = ANY(%s) ORDER BY id", (list(person_ids),)).fetchall()
    return [r[0] for r in rows]


def delete_empty_auto_persons(conn: psycopg.Connection, collection_id: int | None) -> int:
    """Auto-created, unnamed persons left with no cluster and no face (a person never names one)."""
    cur = conn.execute(
        """DELETE FROM person p
           WHERE p.auto_created AND (%(c)s::bigint IS NULL OR p.collection_id = %(c)s)
             AND NOT EXISTS (SELECT 1 FROM cluster c WHERE c.person_id = p.id)
             AND NOT EXISTS (SELECT 1 FROM person_detection d WHERE d.person_id = p.id)""",
        {"c": collection_id},
    )
    return cur.rowcount


class MergeCandidate(Protocol):
    """What merge priority looks at (PersonRow, or a planner's view of a person)."""

    @property
    def id(self) -> int: ...
    @property
    def cluster_count(self) -> int: ...
    @property
    def verified_clusters(self) -> int: ...


Candidate = TypeVar("Candidate", bound=MergeCandidate)


def merge_winner(persons: Sequence[Candidate]) -> Candidate:
    """The person a group merges into: one with verified clusters, then the most clusters, then
    the highest id (the spec's priority)."""
    return max(persons, key=lambda p: (p.verified_clusters > 0, p.cluster_count, p.id))


@dataclass(frozen=True)
class ClusterRow:
    id: int
    collection_id: int
    embedding_model: str
    person_id: int | None
    verified: bool
    hidden: bool
    face_count: int


def get_clusters(conn: psycopg.Connection, cluster_ids: Sequence[int], *, lock: bool = False) -> dict[int, ClusterRow]:
    """These clusters; with `lock`, FOR UPDATE in id order (step 4 of the lock order)."""
    rows = conn.execute(
        f"""SELECT id, collection_id, embedding_model, person_id, verified, hidden, face_count
            FROM cluster WHERE id = ANY(%s) ORDER BY id{" FOR UPDATE" if lock else ""}""",  # noqa: S608
        (sorted(set(cluster_ids)),),
    ).fetchall()
    return {r[0]: ClusterRow(*r) for r in rows}


def rename_person(conn: psycopg.Connection, person_id: int, first: str, last: str | None, *, by: str) -> None:
    """A name a person gives: the person stops being an automatic 'Unknown'."""
    conn.execute(
        """UPDATE person SET first_name = %s, last_name = %s, auto_created = false, named_by = %s,
               updated_at = now() WHERE id = %s""",
        (first, last, by, person_id),
    )


def set_person_hidden(conn: psycopg.Connection, person_id: int, hidden: bool, *, by: str) -> None:
    conn.execute(
        """UPDATE person SET hidden = %s, hidden_by = %s, hidden_at = now(), updated_at = now()
           WHERE id = %s""",
        (hidden, by, person_id),
    )


def set_cluster_hidden(conn: psycopg.Connection, cluster_id: int, hidden: bool, *, by: str) -> None:
    conn.execute(
        """UPDATE cluster SET hidden = %s, hidden_by = %s, hidden_at = now(), updated_at = now()
           WHERE id = %s""",
        (hidden, by, cluster_id),
    )


def set_cluster_verified(conn: psycopg.Connection, cluster_id: int, verified: bool, *, by: str) -> None:
    conn.execute(
        """UPDATE cluster SET verified = %s, verified_at = CASE WHEN %s THEN now() END,
               verified_by = CASE WHEN %s THEN %s END, updated_at = now() WHERE id = %s""",
        (verified, verified, verified, by, cluster_id),
    )


def person_rejections(conn: psycopg.Connection, cluster_ids: Sequence[int], person_id: int) -> list[int]:
    """The clusters among these that someone said are not this person (cluster_person_cannot_link)."""
    rows = conn.execute(
        """SELECT cluster_id FROM cluster_person_cannot_link
           WHERE cluster_id = ANY(%s) AND person_id = %s ORDER BY cluster_id""",
        (list(cluster_ids), person_id),
    ).fetchall()
    return [r[0] for r in rows]


def reject_person(conn: psycopg.Connection, cluster_id: int, person_id: int, *, by: str) -> None:
    """Record that a cluster is not this person, so automatic association never links them again."""
    conn.execute(
        """INSERT INTO cluster_person_cannot_link (cluster_id, person_id, created_by) VALUES (%s, %s, %s)
           ON CONFLICT (cluster_id, person_id) DO NOTHING""",
        (cluster_id, person_id, by),
    )


def forget_rejection(conn: psycopg.Connection, cluster_id: int, person_id: int) -> None:
    conn.execute(
        "DELETE FROM cluster_person_cannot_link WHERE cluster_id = %s AND person_id = %s", (cluster_id, person_id)
    )


def face_persons(conn: psycopg.Connection, detection_ids: Sequence[int]) -> dict[int, int]:
    """The person of each face that has one: its cluster's, else its own person_id."""
    rows = conn.execute(
        """SELECT d.id, coalesce(c.person_id, d.person_id) FROM person_detection d
           LEFT JOIN cluster c ON c.id = d.cluster_id
           WHERE d.id = ANY(%s) AND coalesce(c.person_id, d.person_id) IS NOT NULL""",
        (list(detection_ids),),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def set_face_person(conn: psycopg.Connection, detection_id: int, person_id: int | None, *, by: str) -> None:
    """Who placed a face by hand, and the person it belongs to without a cluster (if any)."""
    conn.execute(
        "UPDATE person_detection SET person_id = %s, assigned_by = %s WHERE id = %s",
        (person_id, by, detection_id),
    )


def nearest_person_cluster(conn: psycopg.Connection, person_id: int, detection_id: int) -> int | None:
    """The cluster of this person, of the face's embedding model, whose centroid is nearest the face."""
    row = conn.execute(
        """SELECT c.id FROM face_embedding fe JOIN cluster c
             ON c.person_id = %s AND c.embedding_model = fe.embedding_model AND c.centroid_sum IS NOT NULL
           WHERE fe.person_detection_id = %s ORDER BY c.centroid_sum <=> fe.embedding, c.id LIMIT 1""",
        (person_id, detection_id),
    ).fetchone()
    return row[0] if row else None


def blocking_faces(conn: psycopg.Connection, detection_id: int, cluster_id: int) -> list[tuple[int, str]]:
    """Faces of a cluster that forbid this face from joining it: a cannot-link, or the same photo."""
    rows = conn.execute(
        """SELECT d.id, 'cannot-link' FROM cannot_link l JOIN person_detection d
             ON d.id = CASE WHEN l.detection_id_1 = %(f)s THEN l.detection_id_2 ELSE l.detection_id_1 END
           WHERE (l.detection_id_1 = %(f)s OR l.detection_id_2 = %(f)s) AND d.cluster_id = %(c)s
           UNION ALL
           SELECT d.id, 'same photo' FROM person_detection d JOIN person_detection f ON f.id = %(f)s
           WHERE d.photo_id = f.photo_id AND d.id <> f.id AND d.cluster_id = %(c)s
           ORDER BY 1""",
        {"f": detection_id, "c": cluster_id},
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def persons_named(conn: psycopg.Connection, collection_id: int, name: str) -> list[int]:
    """The named persons of a collection whose name is `name`, case and repeated spaces aside."""
    rows = conn.execute(
        r"""SELECT id FROM person
            WHERE collection_id = %s AND named
              AND lower(regexp_replace(btrim(concat_ws(' ', first_name, last_name)), '\s+', ' ', 'g'))
                  = lower(regexp_replace(btrim(%s), '\s+', ' ', 'g'))
            ORDER BY id""",
        (collection_id, name),
    ).fetchall()
    return [r[0] for r in rows]
