"""Locks of identity clustering, and the one order every writer takes them in.

1. The model lock: a transaction-scoped advisory lock on (collection, embedding model). A bootstrap
   holds it exclusively while it writes its run; incremental assignment, manual moves and detection
   reruns hold it shared, so none of them changes clusters or faces under a bootstrap's write (a
   rerun that touches several models locks them in name order).
2. The photo: its row FOR UPDATE for a detection rerun, or `lock_photo` (an advisory lock on its
   id) for an assignment, so that two faces of one photo are never placed at the same time.
3. Detection rows, FOR UPDATE, in id order.
4. Cluster rows, FOR UPDATE, in id order.
5. Person rows, FOR UPDATE, in id order (`database.people_repository.lock_persons`).

A writer may skip a step, never go back to an earlier one. Only transaction-scoped (`_xact`)
advisory locks are used, so everything works through PgBouncer in transaction mode. Their keys are
written once, in the database functions clustering_model_lock and clustering_photo_lock (migration
0006), which the assignment function calls too.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg


def model_lock_sql(*, shared: bool) -> str:
    """The statement that takes the model lock (parameters: collection id, model name)."""
    return f"SELECT clustering_model_lock(%s::bigint, %s, {'true' if shared else 'false'})"


def lock_model(conn: psycopg.Connection, collection_id: int, model: str, *, shared: bool) -> None:
    conn.execute(model_lock_sql(shared=shared), (collection_id, model))


def lock_models(conn: psycopg.Connection, collection_id: int, models: Iterable[str]) -> None:
    """Shared model locks on several models of one collection, in name order."""
    for model in sorted(set(models)):
        lock_model(conn, collection_id, model, shared=True)


def lock_photo(conn: psycopg.Connection, photo_id: int) -> None:
    """Step 2 for assignments: one face of a photo at a time joins a cluster (single-key advisory
    locks do not overlap the two-key model locks)."""
    conn.execute("SELECT clustering_photo_lock(%s::bigint)", (photo_id,))


def lock_clusters(conn: psycopg.Connection, cluster_ids: Iterable[int]) -> set[int]:
    """Step 4: lock these clusters in id order; returns those that exist."""
    ids = sorted(set(cluster_ids))
    if not ids:
        return set()
    rows = conn.execute("SELECT id FROM cluster WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (ids,)).fetchall()
    return {r[0] for r in rows}
