"""The work-claiming path alone: many processes x threads draining one processing_status queue.

    .venv/bin/python bench/claims.py                       # 100,000 rows, 8 x 16, batch 1 and 8
    .venv/bin/python bench/claims.py --rows 10000 --processes 2 --threads 4 --batch 4

Runs against the real embedded PostgreSQL (started in a scratch PHOTODB_HOME; its max_connections
of 300 covers 8 x 16 pooled connections, and is raised with ALTER SYSTEM + restart when more are asked).
Every worker thread loops PhotoRepository.claim(...) -> no-op stage -> PhotoRepository.finish(...)
exactly as LocalProcessor._work does (one Database per process, pool_size = threads, one worker
identity per process) until a claim comes back empty. Afterwards the parent checks, from the
pairs each worker reports and from the table, that every pair completed exactly once.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import threading
import time
from collections import Counter
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import embedded_server, environment, fresh_database, percentile, print_table

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.repository import PhotoRepository, Scope

STAGES = ["normalize", "metadata"]  # no dependency between them in this benchmark


@dataclass
class WorkerReport:
    """What one process sends back to the parent."""

    pairs: list[tuple[int, str]] = field(default_factory=list)
    claim_seconds: list[float] = field(default_factory=list)
    finish_seconds: list[float] = field(default_factory=list)
    lost_finishes: int = 0
    started: float = 0.0
    ended: float = 0.0
    error: str | None = None


def settings_for(url: str) -> Settings:
    return Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]


# -- a worker process --------------------------------------------------------------------------


def worker_process(url: str, collection_id: int, threads: int, batch: int, ready: Any, go: Any, results: Any) -> None:
    """One process: a pool of `threads` connections, `threads` claim loops, one report at the end."""
    from photodb.processors.local_processor import worker_identity

    report = WorkerReport()
    try:
        db = Database(settings_for(url), pool_size=threads, migrate=False)
        repo = PhotoRepository(db)
        worker = worker_identity()
        scope = Scope(collection_id)
        lock = threading.Lock()
        warm = threading.Barrier(threads)

        def warm_up() -> None:
            with db.connection():  # hold one connection each so the pool opens all of them now
                warm.wait()

        openers = [threading.Thread(target=warm_up) for _ in range(threads)]
        for t in openers:
            t.start()
        for t in openers:
            t.join()
        ready.put(1)
        go.wait()

        def loop() -> None:
            pairs: list[tuple[int, str]] = []
            claim_s: list[float] = []
            finish_s: list[float] = []
            lost = 0
            while True:
                t0 = time.perf_counter()
                claims = repo.claim(worker, scope, STAGES, {}, batch)
                t1 = time.perf_counter()
                if not claims:
                    break
                claim_s.append(t1 - t0)
                for claim in claims:  # the no-op stage
                    t2 = time.perf_counter()
                    if not repo.finish(worker, claim):
                        lost += 1
                    finish_s.append(time.perf_counter() - t2)
                    pairs.append((claim.photo_id, claim.stage))
            with lock:
                report.pairs += pairs
                report.claim_seconds += claim_s
                report.finish_seconds += finish_s
                report.lost_finishes += lost

        loops = [threading.Thread(target=loop) for _ in range(threads)]
        report.started = time.monotonic()
        for t in loops:
            t.start()
        for t in loops:
            t.join()
        report.ended = time.monotonic()
        db.close()
    except BaseException as error:
        report.error = f"{type(error).__name__}: {error}"
        ready.put(1)
    results.put(report)


# -- the parent ----------------------------------------------------------------------------------


def load_queue(url: str, collection_id: int, rows: int) -> None:
    """Empty the tables and add rows / len(STAGES) photos, each pending for every stage."""
    photos = rows // len(STAGES)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE photo CASCADE")
        conn.execute(
            """INSERT INTO photo (collection_id, filename, file_size)
               SELECT %s, 'bench/' || lpad(g::text, 8, '0') || '.jpg', 1000 FROM generate_series(1, %s) g""",
            (collection_id, photos),
        )
        conn.execute(
            """INSERT INTO processing_status (photo_id, stage)
               SELECT p.id, s FROM photo p, unnest(%s::text[]) AS s WHERE p.collection_id = %s""",
            (STAGES, collection_id),
        )
        conn.execute("VACUUM ANALYZE photo")
        conn.execute("VACUUM ANALYZE processing_status")


def run_once(url: str, collection_id: int, rows: int, processes: int, threads: int, batch: int) -> list[object]:
    """Load the queue, drain it with processes x threads, verify, and return one table row."""
    load_queue(url, collection_id, rows)
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    children = [
        ctx.Process(target=worker_process, args=(url, collection_id, threads, batch, ready, go, results))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    for _ in children:
        ready.get(timeout=300)
    go.set()
    reports: list[WorkerReport] = [results.get(timeout=3600) for _ in children]
    for child in children:
        child.join()
    errors = [r.error for r in reports if r.error]
    if errors:
        raise SystemExit(f"worker failed: {errors[0]}")

    elapsed = max(r.ended for r in reports) - min(r.started for r in reports)
    pairs = [p for r in reports for p in r.pairs]
    claim_ms = sorted(s * 1000 for r in reports for s in r.claim_seconds)
    finish_ms = sorted(s * 1000 for r in reports for s in r.finish_seconds)
    twice_by_workers = sum(n - 1 for n in Counter(pairs).values() if n > 1)
    with psycopg.connect(url) as conn:
        not_done, attempts_over_1, total = conn.execute(
            """SELECT count(*) FILTER (WHERE status <> 'completed'), count(*) FILTER (WHERE attempts <> 1),
                      count(*) FROM processing_status"""
        ).fetchone()  # type: ignore[misc]
    duplicates = twice_by_workers + attempts_over_1
    ok = duplicates == 0 and not_done == 0 and len(pairs) == total == rows
    return [
        batch, processes * threads, len(pairs), f"{elapsed:.1f}", f"{len(pairs) / elapsed:,.0f}",
        len(claim_ms), f"{percentile(claim_ms, 0.50):.1f}", f"{percentile(claim_ms, 0.95):.1f}",
        f"{percentile(claim_ms, 0.99):.1f}", f"{percentile(finish_ms, 0.95):.1f}",
        sum(r.lost_finishes for r in reports), not_done, twice_by_workers, attempts_over_1,
        "OK" if ok else "FAIL",
    ]  # fmt: skip


class _Captured(Exception):
    pass


class _ExplainConnection:
    """Stands in for a pooled connection: runs the repository's SQL under EXPLAIN ANALYZE instead."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.plan: list[str] = []

    def execute(self, query: str, params: Any = None) -> None:
        cursor = self.conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + query, params)
        self.plan = [row[0] for row in cursor.fetchall()]
        raise _Captured


class _ExplainDatabase:
    def __init__(self, conn: _ExplainConnection) -> None:
        self.conn = conn

    def connection(self) -> Any:
        return nullcontext(self.conn)


def explain_claim(url: str, collection_id: int, rows: int, batch: int, done_fraction: float) -> list[str]:
    """EXPLAIN ANALYZE of PhotoRepository.claim's own SQL with `done_fraction` of the queue completed."""
    load_queue(url, collection_id, rows)
    with psycopg.connect(url, autocommit=True) as conn:
        if done_fraction:
            conn.execute(
                """UPDATE processing_status SET status = 'completed', attempts = 1, processed_at = now()
                   WHERE photo_id <= (SELECT min(id) + %s FROM photo)""",
                (int(rows / len(STAGES) * done_fraction),),
            )
    with psycopg.connect(url) as conn:
        proxy = _ExplainConnection(conn)
        with suppress(_Captured):
            PhotoRepository(_ExplainDatabase(proxy)).claim(  # type: ignore[arg-type]
                "bench:1:1", Scope(collection_id), STAGES, {}, batch
            )
        conn.rollback()
    return proxy.plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="(photo, stage) rows, 2 stages per photo")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--threads", type=int, default=16, help="threads (and pooled connections) per process")
    parser.add_argument("--batch", default="1,8", help="comma-separated claim batch sizes (default 1,8)")
    parser.add_argument("--synchronous-commit", choices=["on", "off"], default="on",
                        help="ALTER DATABASE ... SET synchronous_commit (off shows the WAL flush share)")  # fmt: skip
    parser.add_argument("--explain", action="store_true", help="also print EXPLAIN ANALYZE of the claim")
    args = parser.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    connections = args.processes * args.threads
    max_connections = max(100, connections + 20)

    import tempfile

    print(environment())
    with (
        tempfile.TemporaryDirectory(prefix="photodb-bench-pg-") as home,
        embedded_server(Path(home), max_connections=max_connections) as admin,
    ):
        url = fresh_database(admin, "bench_claims")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE bench_claims SET synchronous_commit = {args.synchronous_commit}")
        db = Database(settings_for(url), pool_size=1)  # applies the migrations
        collection = PhotoRepository(db).get_or_create_collection("bench")
        db.close()
        with psycopg.connect(admin) as conn:
            settings = dict(
                conn.execute(
                    """SELECT name, setting FROM pg_settings WHERE name IN ('max_connections', 'shared_buffers',
                       'fsync', 'server_version')"""
                ).fetchall()
            )
        print(f"PostgreSQL {settings['server_version']} (embedded): max_connections={settings['max_connections']}"
              f"{' (raised from 100 with ALTER SYSTEM + restart)' if max_connections > 100 else ''}"
              f", shared_buffers={int(settings['shared_buffers']) * 8 // 1024}"
              f" MiB, fsync={settings['fsync']}, synchronous_commit={args.synchronous_commit}")  # fmt: skip
        print(f"queue: {args.rows:,} (photo, stage) rows = {args.rows // len(STAGES):,} photos x {STAGES}; "
              f"{args.processes} processes x {args.threads} threads, "
              f"pool_size={args.threads} per process\n")  # fmt: skip

        table = []
        for batch in batches:
            row = run_once(url, collection.id, args.rows, args.processes, args.threads, batch)
            print(f"  batch {batch}: {row[4]} claims/s", flush=True)
            table.append(row)
        print()
        print_table(
            ["batch", "threads", "pairs", "seconds", "claims/s", "claim calls", "claim p50 ms", "claim p95 ms",
             "claim p99 ms", "finish p95 ms", "lost finishes", "not completed", "processed twice",
             "attempts<>1", "check"],
            table,
        )  # fmt: skip

        if args.explain:
            for fraction in (0.0, 0.5):
                print(f"\nEXPLAIN ANALYZE of PhotoRepository.claim, batch {batches[-1]}, {fraction:.0%} of "
                      "the queue completed:")  # fmt: skip
                for line in explain_claim(url, collection.id, args.rows, batches[-1], fraction):
                    print("  " + line)


if __name__ == "__main__":
    main()
