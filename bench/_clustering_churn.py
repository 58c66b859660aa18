"""The index-bloat case of bench/clustering.py: the centroid HNSW index and the cluster table
after many incremental assignments, each face released and assigned again, under the autovacuum
settings and centroid write tolerance before and after the migrations that changed them (0015:
autovacuum of `cluster` after 200 dead rows, TOAST after 400, the embedded server's naptime 10 s;
0020 and 0026: the tolerance). Each phase starts from a compacted table (VACUUM FULL), so they are alike."""

from __future__ import annotations

import time
from collections.abc import Callable

#: The centroid write tolerance (cosine distance) before migration 0020, and before 0026.
OLD_TOLERANCE = 1e-4
TOLERANCE_0020 = 1e-3
MIB = 1024 * 1024


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


def current_tolerance(db) -> float:
    from photodb.database.clustering.centroids import tolerance

    with db.connection() as conn:
        return tolerance(conn)


def configure(db, *, autovacuum_0015: bool, tolerance: float) -> None:
    """Bench setup only: the cluster table's autovacuum thresholds (table, TOAST) and the server's
    naptime as before 0015 (1000 and 1000 dead rows from 0004 and 0006, PostgreSQL's one minute)
    or as now (200, 400, 10 s), and the tolerance."""
    table, toast = (200, 400) if autovacuum_0015 else (1000, 1000)
    with db.autocommit() as conn:
        conn.execute(
            f"ALTER TABLE cluster SET (autovacuum_vacuum_threshold = {table}, "
            f"toast.autovacuum_vacuum_threshold = {toast})"
        )
        if autovacuum_0015:
            conn.execute("ALTER SYSTEM RESET autovacuum_naptime")
        else:
            conn.execute("ALTER SYSTEM SET autovacuum_naptime = '60s'")
        conn.execute("SELECT pg_reload_conf()")
        conn.execute(
            f"""CREATE OR REPLACE FUNCTION cluster_centroid_tolerance() RETURNS double precision
                LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT {float(tolerance)!r}::double precision $$"""
        )
        conn.execute("VACUUM FULL cluster")
        conn.execute("ANALYZE cluster")


def settled_sizes(db) -> dict[str, int]:
    """Sizes and counters once every backend has reported its updates (an idle backend flushes its
    statistics within ten seconds)."""
    time.sleep(11)
    return relation_sizes(db)


def show(label: str, before: dict[str, int], after: dict[str, int]) -> None:
    updates, hot = after["updates"] - before["updates"], after["hot"] - before["hot"]
    print(
        f"    {label}: centroid HNSW index {before['index'] / MIB:.1f} -> {after['index'] / MIB:.1f} MiB, "
        f"cluster table {before['table'] / MIB:.1f} -> {after['table'] / MIB:.1f} MiB "
        f"(heap {before['heap'] / MIB:.1f} -> {after['heap'] / MIB:.1f}, "
        f"TOAST {before['toast'] / MIB:.1f} -> {after['toast'] / MIB:.1f}, "
        f"other indexes {before['btrees'] / MIB:.1f} -> {after['btrees'] / MIB:.1f}); "
        f"{hot} of {updates} cluster updates HOT ({hot / max(updates, 1):.0%}, no index entry); "
        f"autovacuum ran {after['autovacuums'] - before['autovacuums']} times on it"
    )


def churn(db, ids: list[int], assignments: int, tier2_quality: Callable[[], str]) -> None:
    """Each phase: compacted, then `assignments` assignments and as many releases; then the faces
    are released and placed once more by tier 2 alone (`tier2_quality`), which shows what the
    tolerance does to decisions: tier 2 finds its candidates by the stored centroids."""
    import os

    new_tolerance = current_tolerance(db)
    phases = (
        ("before 0015 and 0020: vacuum after 1000 dead rows, naptime 1 min, tolerance 1e-4", False, OLD_TOLERANCE),
        ("0015's autovacuum settings, 0020's tolerance 1e-3 (before 0026)", True, TOLERANCE_0020),
        (f"0015's autovacuum settings, 0026's tolerance {new_tolerance:g} (now)", True, new_tolerance),
    )
    for label, autovacuum_0015, tolerance in phases:
        configure(db, autovacuum_0015=autovacuum_0015, tolerance=tolerance)
        before = settled_sizes(db)
        seconds = churn_round(db, ids, assignments)
        print(f"  {label}")
        show(f"after {assignments} assignments and their releases ({seconds:.0f} s)", before, settled_sizes(db))
        print(f"    then tier 2 alone on the same faces: {tier2_quality()}")
        print(f"    machine load (1, 5, 15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
