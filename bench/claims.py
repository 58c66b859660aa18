"""The work-claiming path alone: many processes x threads draining one processing_status queue.

    .venv/bin/python bench/claims.py                       # 100,000 rows, 8 x 16, batch 1 and 8
    .venv/bin/python bench/claims.py --rows 10000 --processes 2 --threads 4 --batch 4

Runs against the real embedded PostgreSQL (started in a scratch PHOTODB_HOME; its max_connections
of 300 covers 8 x 16 pooled connections, and is raised with ALTER SYSTEM + restart when more are asked).
Every worker thread loops QueueRepository.settle_and_claim(...) -> no-op stage, exactly as
QueueWorker does (one Database per process, pool_size = threads, retries on, one holder per thread),
until a claim comes back empty. Beside it, on the same pooled connections, a bare loop claims with
a plain `UPDATE ... FOR UPDATE SKIP LOCKED` and marks its batch completed with one plain UPDATE:
the floor any queue on this table pays. Afterwards the parent checks, from the pairs each worker
reports and from the table, that every pair completed exactly once.

The blocked case adds rows that can never run (a 'detection' row behind a failed 'normalize')
at the front of the queue, 30 % of all rows: once left 'pending' as before, once moved to
'blocked' as a run does at its start.
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
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import embedded_server, environment, fresh_database, percentile, print_table

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.models import Claim
from photodb.database.queue_repository import Outcome, QueuePlan, QueueRepository
from photodb.database.repository import PhotoRepository, Scope
from photodb.processors.identity import ProcessIdentity

STAGES = ["normalize", "metadata"]  # no dependency between them in this benchmark
PLAN = QueuePlan(
    stages=("normalize", "metadata", "detection"),
    requires={"detection": ("normalize",)},
    ancestors={"detection": ("normalize",)},
)
BLOCKED_SHARE = 0.3

_BARE_CLAIM = """
WITH c AS (
    SELECT photo_id, stage FROM processing_status WHERE status = 'pending' AND stage = ANY(%(stages)s)
    ORDER BY photo_id, stage LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
UPDATE processing_status ps SET status = 'processing', claimed_by = %(holder)s, claimed_at = now(),
    attempts = ps.attempts + 1
FROM c WHERE ps.photo_id = c.photo_id AND ps.stage = c.stage
RETURNING ps.photo_id, ps.stage"""
_BARE_FINISH = """
UPDATE processing_status ps SET status = 'completed', claimed_at = NULL, processed_at = now()
FROM unnest(%s::bigint[], %s::text[]) AS f(photo_id, stage)
WHERE ps.photo_id = f.photo_id AND ps.stage = f.stage AND ps.claimed_by = %s"""


@dataclass
class WorkerReport:
    """What one process sends back to the parent."""

    pairs: list[tuple[int, str]] = field(default_factory=list)
    claim_seconds: list[float] = field(default_factory=list)
    lost_finishes: int = 0
    started: float = 0.0
    ended: float = 0.0
    error: str | None = None


def settings_for(url: str) -> Settings:
    return Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]


# -- a worker process --------------------------------------------------------------------------


def photodb_loop(db: Database, holder: str, scope: Scope, batch: int) -> tuple[list[tuple[int, str]], list[float], int]:
    """QueueWorker's loop with a no-op stage: settle the last batch and claim the next in one call."""
    queue = QueueRepository(db)
    pairs: list[tuple[int, str]] = []
    seconds: list[float] = []
    outcomes: list[Outcome] = []
    lost = 0
    while True:
        t0 = time.perf_counter()
        cycle = db.retrying(partial(queue.settle_and_claim, holder, outcomes, scope, PLAN, batch), "claiming")
        seconds.append(time.perf_counter() - t0)
        lost += len(outcomes) - len(cycle.settled)
        if not cycle.claims:
            return pairs, seconds, lost
        outcomes = [Outcome(claim, "completed") for claim in cycle.claims]  # the no-op stage
        pairs += [(c.photo_id, c.stage) for c in cycle.claims]


def bare_loop(db: Database, holder: str, scope: Scope, batch: int) -> tuple[list[tuple[int, str]], list[float], int]:
    """The baseline: a plain SKIP LOCKED claim and one plain UPDATE for the batch, same connections."""
    pairs: list[tuple[int, str]] = []
    seconds: list[float] = []
    lost = 0
    while True:
        t0 = time.perf_counter()
        with db.autocommit() as conn:
            claims = [
                Claim(r[0], r[1], 1)
                for r in conn.execute(_BARE_CLAIM, {"stages": STAGES, "limit": batch, "holder": holder}).fetchall()
            ]
        seconds.append(time.perf_counter() - t0)
        if not claims:
            return pairs, seconds, lost
        with db.autocommit() as conn:
            done = conn.execute(
                _BARE_FINISH, ([c.photo_id for c in claims], [c.stage for c in claims], holder)
            ).rowcount
        lost += len(claims) - done
        pairs += [(c.photo_id, c.stage) for c in claims]


LOOPS = {"photodb": photodb_loop, "bare": bare_loop}


def worker_process(
    url: str, collection_id: int, threads: int, batch: int, mode: str, ready: Any, go: Any, results: Any
) -> None:
    """One process: a pool of `threads` connections, `threads` claim loops, one report at the end."""
    report = WorkerReport()
    try:
        db = Database(settings_for(url), pool_size=threads, migrate=False)
        identity = ProcessIdentity.current()
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

        def loop(index: int) -> None:
            pairs, seconds, lost = LOOPS[mode](db, identity.holder(index), scope, batch)
            with lock:
                report.pairs += pairs
                report.claim_seconds += seconds
                report.lost_finishes += lost

        loops = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
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


def load_queue(url: str, collection_id: int, rows: int, blocked: str | None = None) -> int:
    """Empty the tables and add rows / len(STAGES) photos, each pending for every stage.

    With `blocked` ('pending' or 'blocked'), photos whose normalize failed come first, each with a
    detection row in that status, making up BLOCKED_SHARE of all rows. Returns their row count.
    """
    photos = rows // len(STAGES)
    stuck = round(rows * BLOCKED_SHARE / (1 - BLOCKED_SHARE)) if blocked else 0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE photo CASCADE")
        if stuck:
            conn.execute(
                """INSERT INTO photo (collection_id, filename, file_size)
                   SELECT %s, 'failed/' || lpad(g::text, 8, '0') || '.jpg', 1000 FROM generate_series(1, %s) g""",
                (collection_id, stuck),
            )
            conn.execute(
                """INSERT INTO processing_status (photo_id, stage, status, attempts, processed_at, error_message)
                   SELECT p.id, s.stage, s.status, 1, now(), s.error FROM photo p,
                       (VALUES ('normalize', 'failed', 'broken file'), ('metadata', 'completed', NULL))
                           AS s(stage, status, error)
                   WHERE p.collection_id = %s""",
                (collection_id,),
            )
            conn.execute(
                """INSERT INTO processing_status (photo_id, stage, status)
                   SELECT p.id, 'detection', %s FROM photo p WHERE p.collection_id = %s""",
                (blocked, collection_id),
            )
        conn.execute(
            """INSERT INTO photo (collection_id, filename, file_size)
               SELECT %s, 'bench/' || lpad(g::text, 8, '0') || '.jpg', 1000 FROM generate_series(1, %s) g""",
            (collection_id, photos),
        )
        conn.execute(
            """INSERT INTO processing_status (photo_id, stage)
               SELECT p.id, s FROM photo p, unnest(%s::text[]) AS s
               WHERE p.collection_id = %s AND p.filename LIKE 'bench/%%'""",
            (STAGES, collection_id),
        )
        conn.execute("VACUUM ANALYZE photo")
        conn.execute("VACUUM ANALYZE processing_status")
    return stuck


def run_once(
    url: str, collection_id: int, rows: int, processes: int, threads: int, batch: int, mode: str, blocked: str | None
) -> tuple[float, list[object]]:
    """Load the queue, drain it with processes x threads, verify; return claims/s and one table row."""
    stuck = load_queue(url, collection_id, rows, blocked)
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    children = [
        ctx.Process(target=worker_process, args=(url, collection_id, threads, batch, mode, ready, go, results))
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
    twice_by_workers = sum(n - 1 for n in Counter(pairs).values() if n > 1)
    with psycopg.connect(url) as conn:
        not_done, attempts_over_1, total, touched_stuck = conn.execute(
            """SELECT count(*) FILTER (WHERE status <> 'completed' AND stage = ANY(%(s)s) AND filename LIKE 'bench/%%'),
                      count(*) FILTER (WHERE attempts <> 1 AND stage = ANY(%(s)s) AND filename LIKE 'bench/%%'),
                      count(*) FILTER (WHERE filename LIKE 'bench/%%'),
                      count(*) FILTER (WHERE stage = 'detection' AND status NOT IN ('pending', 'blocked'))
               FROM processing_status JOIN photo ON photo.id = photo_id""",
            {"s": STAGES},
        ).fetchone()  # type: ignore[misc]
    duplicates = twice_by_workers + attempts_over_1
    ok = duplicates == 0 and not_done == 0 and touched_stuck == 0 and len(pairs) == total == rows
    rate = len(pairs) / elapsed
    case = f"{BLOCKED_SHARE:.0%} {blocked}" if blocked else "plain"
    return rate, [
        case, mode, batch, processes * threads, len(pairs), stuck, f"{elapsed:.1f}", f"{rate:,.0f}",
        len(claim_ms), f"{percentile(claim_ms, 0.50):.1f}", f"{percentile(claim_ms, 0.95):.1f}",
        f"{percentile(claim_ms, 0.99):.1f}", sum(r.lost_finishes for r in reports), not_done, twice_by_workers,
        attempts_over_1, "OK" if ok else "FAIL",
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

    def autocommit(self) -> Any:
        return nullcontext(self.conn)


def explain_claim(url: str, collection_id: int, rows: int, batch: int, done_fraction: float) -> list[str]:
    """EXPLAIN ANALYZE of QueueRepository.settle_and_claim's SQL with `done_fraction` of the queue completed."""
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
            QueueRepository(_ExplainDatabase(proxy)).settle_and_claim(  # type: ignore[arg-type]
                "bench@x:1:1/0", [], Scope(collection_id), PLAN, batch
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
    parser.add_argument("--cases", default="plain,pending,blocked",
                        help="plain; pending = 30%% rows behind failures left pending (as before); blocked = moved "
                             "to 'blocked' (as now)")  # fmt: skip
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
        cases = {"plain": None, "pending": "pending", "blocked": "blocked"}
        for blocked in [cases[name] for name in args.cases.split(",")]:
            for batch in batches:
                rates = {}
                for mode in ("photodb", "bare"):
                    rate, row = run_once(
                        url, collection.id, args.rows, args.processes, args.threads, batch, mode, blocked
                    )
                    rates[mode] = rate
                    table.append(row)
                table[-2].insert(8, f"{rates['photodb'] / rates['bare']:.2f}")
                table[-1].insert(8, "1.00")
                print(f"  {row[0]:>12} batch {batch}: photodb {rates['photodb']:,.0f} claims/s, "
                      f"bare loop {rates['bare']:,.0f} claims/s, ratio {rates['photodb'] / rates['bare']:.2f}",
                      flush=True)  # fmt: skip
        print()
        print_table(
            ["case", "loop", "batch", "threads", "pairs", "rows blocked", "seconds", "claims/s", "x bare",
             "claim calls", "claim p50 ms", "claim p95 ms", "claim p99 ms", "lost finishes", "not completed",
             "processed twice", "attempts<>1", "check"],
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
