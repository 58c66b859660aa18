"""Locks of identity clustering, and the one order every writer takes them in.

Bootstrap writes and incremental assignment of one (collection, embedding model) serialise on a
transaction-scoped advisory lock: a bootstrap holds it exclusively while it rewrites clusters,
each incremental assignment holds it shared, so they never see each other's half-done work and
never deadlock on cluster rows. Among incremental assignments, the detection row and then the
cluster row are locked with SELECT ... FOR UPDATE (always in that order).
"""

from __future__ import annotations

import psycopg


def lock_model(conn: psycopg.Connection, collection_id: int, model: str, *, shared: bool) -> None:
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    conn.execute(f"SELECT {fn}(%s::int, hashtext(%s))", (collection_id, model))
