"""The index-bloat case of bench/clustering.py: the centroid HNSW index and the cluster table
after many incremental assignments, each face released and assigned again."""

from __future__ import annotations

import time


def relation_sizes(db) -> dict[str, int]:
    """Bytes of the centroid HNSW index, of the cluster table (heap and TOAST, and each alone) and
    of its other indexes, with its update counters."""
    with db.connection() as conn:
        row = conn.execute(
            """SELECT pg_relation_size('idx_cluster_centroid'), pg_table_size('cluster'),
                      pg_relation_size('cluster'), pg_total_relation_size(c.reltoastrelid),
                      pg_indexes_size('cluster') - pg_relation_size('idx_cluster_centroid'),
                      coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_hot_upd, 0), s.autovacuum_count
               FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = 'cluster'"""
        ).fetchone()
    keys = ("index", "table", "heap", "toast", "btrees", "updates", "hot", "autovacuums")
    return dict(zip(keys, row, strict=True))


def release(db, ids: list[int]) -> None:
    """Undo assignments through the repository (sums and counts follow), one model lock."""
    from photodb.database.clustering import locks, manual

    with db.connection() as conn, conn.transaction():
        locks.lock_model(conn, 1, "arcface", shared=True)
        manual.release_faces(conn, ids)


def churn_round(db, ids: list[int], assignments: int) -> float:
    """Release and re-assign the held-out faces (500 per call) until `assignments` are done."""
    from photodb.clustering.incremental import assign_new_faces

    done, started = 0, time.perf_counter()
    while done < assignments:
        release(db, ids)
        part = ids[: assignments - done]
        for k in range(0, len(part), 500):
            assign_new_faces(db, part[k : k + 500], force=True)
        done += len(part)
    return time.perf_counter() - started


def churn(db, ids: list[int], assignments: int, before: dict[str, int]) -> None:
    """The centroid index and cluster table after `assignments` more assignments (autovacuum as
    configured), after a VACUUM, and after as many again: once vacuumed, the HNSW index reuses
    the space of dead entries, so its size is bounded by what accumulates between vacuums."""
    mib = 1024 * 1024

    def show(label: str, sizes: dict[str, int]) -> None:
        updates, hot = sizes["updates"] - before["updates"], sizes["hot"] - before["hot"]
        print(
            f"  {label}: centroid HNSW index {before['index'] / mib:.1f} -> {sizes['index'] / mib:.1f} MiB, "
            f"cluster table {before['table'] / mib:.1f} -> {sizes['table'] / mib:.1f} MiB "
            f"(heap {before['heap'] / mib:.1f} -> {sizes['heap'] / mib:.1f}, "
            f"TOAST {before['toast'] / mib:.1f} -> {sizes['toast'] / mib:.1f}, "
            f"other indexes {before['btrees'] / mib:.1f} -> {sizes['btrees'] / mib:.1f}); "
            f"{hot} of {updates} cluster updates HOT (no index entry); "
            f"autovacuum ran {sizes['autovacuums'] - before['autovacuums']} times on it"
        )

    seconds = churn_round(db, ids, assignments)
    with db.connection() as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
    show(f"after {assignments} more assignments ({seconds:.0f} s)", relation_sizes(db))
    with db.autocommit() as conn:
        conn.execute("VACUUM cluster")
    seconds = churn_round(db, ids, assignments)
    show(f"after a VACUUM and {assignments} more ({seconds:.0f} s)", relation_sizes(db))
