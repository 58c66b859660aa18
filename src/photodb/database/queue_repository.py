"""The processing queue: (photo, stage) rows of processing_status, claimed, settled and handed back.

Rules (docs/DESIGN.md repeats them):
- A worker thread claims up to N 'pending' rows whose in-run dependencies are 'completed', with
  `FOR UPDATE SKIP LOCKED`, so threads, processes and hosts never run the same pair at once.
  `claimed_by` names the thread (`host@machine:pid:start/thread`), `claimed_at` starts the lease.
- One statement settles the thread's previous batch (completed / failed / handed back) and claims
  the next one; settling is idempotent, and after a lost answer the rows the thread holds but
  does not know about (a claim that committed) are taken up instead of claiming more.
- A failed pair moves every pending pair of the same photo that depends on it, directly or not,
  to 'blocked', so claims never scan them again; re-queueing the failure puts them back.
- 'skipped' means the stage could not run here (its model is missing): never a failure, no
  attempt counted, and nothing a later stage needs, so dependents count it as done. A stage that
  cannot run at all is never claimed: its pending rows become 'skipped' in one statement. The
  next run whose stage can do more than the run that skipped them (the stored reason is not the
  stage's current `partial_reason`) puts them back to 'pending', again in one statement.
- Claims of dead processes on this machine, and claims older than the lease anywhere, go back to
  'pending' when a run starts or idles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from photodb.database.connection import Database
from photodb.database.models import Claim, StageCounts, StageError
from photodb.database.repository import Scope

Settled = Literal["completed", "failed", "pending", "skipped"]


@dataclass(frozen=True)
class QueuePlan:
    """The stages of a run in order, what each needs settled first, what can block it, what cannot run."""

    stages: tuple[str, ...]
    requires: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # dependencies inside this run
    ancestors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # every stage it depends on
    skipping: Mapping[str, str] = field(default_factory=dict)  # stage -> why it cannot run here: never claimed
    partial: Mapping[str, str] = field(default_factory=dict)  # stage -> why it skips each photo after partial work

    @property
    def claimable(self) -> tuple[str, ...]:
        return tuple(stage for stage in self.stages if stage not in self.skipping)

    def current_skip_reasons(self) -> dict[str, str | None]:
        """Per claimable stage, the reason it would skip a photo with now (None: it does everything)."""
        return {stage: self.partial.get(stage) for stage in self.claimable}

    @staticmethod
    def _pairs(mapping: Mapping[str, Sequence[str]]) -> tuple[list[str], list[str]]:
        pairs = [(stage, other) for stage, others in mapping.items() for other in others]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def params(self) -> dict[str, object]:
        req_stage, req_on = self._pairs(self.requires)
        anc_stage, anc_of = self._pairs(self.ancestors)
        return {
            "stages": list(self.claimable),
            "req_stage": req_stage,
            "req_on": req_on,
            "anc_stage": anc_stage,
            "anc_of": anc_of,
        }


@dataclass(frozen=True)
class Outcome:
    """What became of one claim: completed, failed or skipped with a message, or handed back unrun."""

    claim: Claim
    status: Settled
    error: str | None = None


@dataclass
class Cycle:
    """The answer to settle_and_claim: the next claims, and the settled rows that were still ours."""

    claims: list[Claim]
    settled: list[tuple[str, str]]  # (stage, status)


_SCOPE = """p.collection_id = %(collection)s AND (%(pattern)s::text IS NULL OR p.filename LIKE %(pattern)s)"""

_SETTLE_AND_CLAIM = f"""
WITH outcome AS (
    SELECT * FROM unnest(%(o_photo)s::bigint[], %(o_stage)s::text[], %(o_status)s::text[], %(o_error)s::text[])
        AS o(photo_id, stage, status, error)),
settled AS (
    UPDATE processing_status ps
    SET status = o.status, error_message = o.error, claimed_at = NULL, updated_at = now(),
        claimed_by = CASE WHEN o.status = 'pending' THEN NULL ELSE ps.claimed_by END,
        processed_at = CASE WHEN o.status = 'pending' THEN ps.processed_at ELSE now() END,
        attempts = ps.attempts - (ps.status = 'processing' AND o.status IN ('pending', 'skipped'))::int
    FROM outcome o
    WHERE ps.photo_id = o.photo_id AND ps.stage = o.stage AND ps.claimed_by = %(holder)s
      AND (ps.status = 'processing' OR (ps.status = o.status AND o.status <> 'pending'))
    RETURNING ps.photo_id, ps.stage, o.status),
blocked AS (
    UPDATE processing_status ps SET status = 'blocked', updated_at = now()
    FROM settled s, unnest(%(anc_stage)s::text[], %(anc_of)s::text[]) AS a(stage, ancestor)
    WHERE s.status = 'failed' AND a.ancestor = s.stage
      AND ps.photo_id = s.photo_id AND ps.stage = a.stage AND ps.status = 'pending'
    RETURNING ps.photo_id, ps.stage),
candidate AS (
    -- Per-row probes (scalar subqueries), never a join or hash over photo or the completed rows:
    -- the scan stops after `limit` claimable rows however long the table is.
    SELECT ps.photo_id, ps.stage
    FROM processing_status ps
    WHERE ps.status = 'pending' AND ps.stage = ANY(%(stages)s)
      AND (SELECT {_SCOPE} FROM photo p WHERE p.id = ps.photo_id)
      AND NOT EXISTS (
          SELECT 1 FROM unnest(%(req_stage)s::text[], %(req_on)s::text[]) AS d(stage, dep)
          WHERE d.stage = ps.stage
            AND (SELECT x.status IN ('completed', 'skipped')
                 FROM processing_status x WHERE x.photo_id = ps.photo_id AND x.stage = d.dep) IS NOT TRUE)
      AND NOT EXISTS (SELECT 1 FROM blocked b WHERE b.photo_id = ps.photo_id AND b.stage = ps.stage)
    ORDER BY ps.photo_id, array_position(%(stages)s::text[], ps.stage)
    LIMIT %(limit)s
    FOR UPDATE OF ps SKIP LOCKED),
claimed AS (
    UPDATE processing_status ps
    SET status = 'processing', claimed_by = %(holder)s, claimed_at = now(), attempts = ps.attempts + 1,
        updated_at = now()
    FROM candidate c
    WHERE ps.photo_id = c.photo_id AND ps.stage = c.stage
    RETURNING ps.photo_id, ps.stage, ps.attempts)
SELECT 'claimed', photo_id, stage, attempts FROM claimed
UNION ALL SELECT status, photo_id, stage, 0 FROM settled
"""  # noqa: S608 - constant fragments only

#: After a lost answer: the rows this thread holds but does not know about (the claim did commit).
_HELD = """
SELECT photo_id, stage, attempts FROM processing_status
WHERE status = 'processing' AND claimed_by = %(holder)s
  AND (photo_id, stage) NOT IN (SELECT * FROM unnest(%(o_photo)s::bigint[], %(o_stage)s::text[]))"""

_NO_FAILED_ANCESTOR = """NOT EXISTS (
    SELECT 1 FROM unnest(%(anc_stage)s::text[], %(anc_of)s::text[]) AS a(stage, ancestor)
    JOIN processing_status x ON x.photo_id = ps.photo_id AND x.stage = a.ancestor
    WHERE a.stage = ps.stage AND x.status = 'failed')"""


class QueueRepository:
    """Every statement of the work queue; each is one round trip and safe to retry."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def settle_and_claim(
        self,
        holder: str,
        outcomes: Sequence[Outcome],
        scope: Scope,
        plan: QueuePlan,
        limit: int,
        *,
        retry: bool = False,
    ) -> Cycle:
        """Record `outcomes`, then take up to `limit` claimable rows, in one statement.

        Rows come in photo order, earlier stages first, so each photo moves through the pipeline
        while its files are still warm in the page cache. With `retry` (the previous call's answer
        was lost) rows the holder already has are returned first, instead of claiming more.
        """
        params = {
            **plan.params(),
            "o_photo": [o.claim.photo_id for o in outcomes],
            "o_stage": [o.claim.stage for o in outcomes],
            "o_status": [o.status for o in outcomes],
            "o_error": [o.error for o in outcomes],
            "holder": holder,
            "collection": scope.collection_id,
            "pattern": scope.like_pattern,
            "limit": limit,
        }
        with self.db.autocommit() as conn:
            if retry:
                held = conn.execute(_HELD, params).fetchall()
                if held:
                    params.update(limit=0)
                    rows = conn.execute(_SETTLE_AND_CLAIM, params).fetchall()
                    rows += [("claimed", *r) for r in held]
                else:
                    rows = conn.execute(_SETTLE_AND_CLAIM, params).fetchall()
            else:
                rows = conn.execute(_SETTLE_AND_CLAIM, params).fetchall()
        order = {stage: index for index, stage in enumerate(plan.stages)}
        claims = sorted(
            (Claim(photo_id=r[1], stage=r[2], attempts=r[3]) for r in rows if r[0] == "claimed"),
            key=lambda c: (c.photo_id, order.get(c.stage, 0)),
        )
        return Cycle(claims, [(r[2], r[0]) for r in rows if r[0] != "claimed"])

    def hand_back(self, process: str) -> int:
        """Put every row still held by a thread of `process` back to pending, uncounted as an attempt."""
        with self.db.autocommit() as conn:
            return conn.execute(
                """UPDATE processing_status SET status = 'pending', claimed_by = NULL, claimed_at = NULL,
                       attempts = greatest(attempts - 1, 0), updated_at = now()
                   WHERE status = 'processing' AND claimed_by LIKE %s""",
                (_escape_like(process) + "/%",),
            ).rowcount

    def release_claims(self, holders: Iterable[str]) -> int:
        """Put the 'processing' rows of the given (dead) holders back to pending."""
        holders = list(holders)
        if not holders:
            return 0
        with self.db.autocommit() as conn:
            return conn.execute(
                """UPDATE processing_status SET status = 'pending', claimed_by = NULL, claimed_at = NULL,
                       updated_at = now()
                   WHERE status = 'processing' AND claimed_by = ANY(%s)""",
                (holders,),
            ).rowcount

    def release_expired_claims(self, lease_seconds: int) -> int:
        with self.db.autocommit() as conn:
            return conn.execute(
                """UPDATE processing_status SET status = 'pending', claimed_by = NULL, claimed_at = NULL,
                       updated_at = now()
                   WHERE status = 'processing' AND claimed_at < now() - make_interval(secs => %s)""",
                (lease_seconds,),
            ).rowcount

    def claim_holders(self, prefix: str) -> list[str]:
        """Holders of live claims whose name starts with `prefix` (this machine's processes)."""
        with self.db.autocommit() as conn:
            rows = conn.execute(
                """SELECT DISTINCT claimed_by FROM processing_status
                   WHERE status = 'processing' AND claimed_by LIKE %s""",
                (_escape_like(prefix) + "%",),
            ).fetchall()
        return [r[0] for r in rows]

    def requeue_failed(self, scope: Scope, stages: Sequence[str]) -> int:
        with self.db.autocommit() as conn:
            return conn.execute(
                f"""UPDATE processing_status ps SET status = 'pending', error_message = NULL, updated_at = now()
                    FROM photo p
                    WHERE p.id = ps.photo_id AND ps.status = 'failed' AND ps.stage = ANY(%(stages)s)
                      AND {_SCOPE}""",  # noqa: S608
                {"stages": list(stages), "collection": scope.collection_id, "pattern": scope.like_pattern},
            ).rowcount

    def requeue_skipped(self, scope: Scope, current: Mapping[str, str | None]) -> int:
        """Back to pending: rows an earlier run skipped that the stage can now do more for.

        `current` maps each stage to the reason it would skip a photo with now (None when it can
        do all its work). A row skipped with that same reason stays skipped: rerunning it would
        only redo the partial work (e.g. object labels without the CLIP weights).
        """
        if not current:
            return 0
        with self.db.autocommit() as conn:
            return conn.execute(
                f"""UPDATE processing_status ps SET status = 'pending', error_message = NULL, updated_at = now()
                    FROM photo p, unnest(%(stages)s::text[], %(reasons)s::text[]) AS s(stage, reason)
                    WHERE p.id = ps.photo_id AND ps.status = 'skipped' AND ps.stage = s.stage
                      AND (s.reason IS NULL OR ps.error_message IS DISTINCT FROM s.reason)
                      AND {_SCOPE}""",  # noqa: S608
                {
                    "stages": list(current),
                    "reasons": list(current.values()),
                    "collection": scope.collection_id,
                    "pattern": scope.like_pattern,
                },
            ).rowcount

    def skip_unavailable(self, plan: QueuePlan, scope: Scope | None = None, photo_ids: Sequence[int] = ()) -> int:
        """Record the pending rows of the stages that cannot run here as 'skipped' with the reason.

        One statement for every such stage, over the run's scope when it starts and over each
        registered chunk's photos after it: no stage ever claims a row it cannot process.
        """
        if not plan.skipping:
            return 0
        params: dict[str, object] = {
            "skip_stage": list(plan.skipping),
            "skip_reason": list(plan.skipping.values()),
            "ids": list(photo_ids),
        }
        if scope is None:
            where = "ps.photo_id = ANY(%(ids)s)"
        else:
            params.update(collection=scope.collection_id, pattern=scope.like_pattern)
            where = f"EXISTS (SELECT 1 FROM photo p WHERE p.id = ps.photo_id AND {_SCOPE})"  # noqa: S608
        with self.db.autocommit() as conn:
            return conn.execute(
                f"""UPDATE processing_status ps
                    SET status = 'skipped', error_message = s.reason, processed_at = now(), updated_at = now()
                    FROM unnest(%(skip_stage)s::text[], %(skip_reason)s::text[]) AS s(stage, reason)
                    WHERE ps.stage = s.stage AND ps.status = 'pending' AND {where}""",  # noqa: S608
                params,
            ).rowcount

    def refresh_blocked(self, plan: QueuePlan, scope: Scope | None = None, photo_ids: Sequence[int] = ()) -> None:
        """Block pending rows behind a failed stage, unblock rows whose failed stage was re-queued.

        Runs once when a run starts (over its scope) and after each registered chunk (over its
        photos): the only moments a row can come to sit behind a failure without a failing settle.
        """
        params = {**plan.params(), "ids": list(photo_ids)}
        if scope is None:
            where = "ps.photo_id = ANY(%(ids)s)"
        else:
            params.update(collection=scope.collection_id, pattern=scope.like_pattern)
            where = f"EXISTS (SELECT 1 FROM photo p WHERE p.id = ps.photo_id AND {_SCOPE})"  # noqa: S608
        with self.db.autocommit() as conn, conn.transaction():
            conn.execute(
                f"""UPDATE processing_status ps SET status = 'pending', updated_at = now()
                    WHERE ps.status = 'blocked' AND {where} AND {_NO_FAILED_ANCESTOR}""",  # noqa: S608
                params,
            )
            conn.execute(
                f"""UPDATE processing_status ps SET status = 'blocked', updated_at = now()
                    WHERE ps.status = 'pending' AND ps.stage = ANY(%(anc_stage)s) AND {where}
                      AND NOT {_NO_FAILED_ANCESTOR}""",  # noqa: S608
                params,
            )

    def work_in_flight(self, scope: Scope, stages: Sequence[str]) -> bool:
        """Whether any worker anywhere still holds a claim in scope (it may unlock dependent stages)."""
        with self.db.autocommit() as conn:
            row = conn.execute(
                f"""SELECT EXISTS (
                        SELECT 1 FROM processing_status ps JOIN photo p ON p.id = ps.photo_id
                        WHERE ps.status = 'processing' AND ps.stage = ANY(%(stages)s) AND {_SCOPE})""",  # noqa: S608
                {"stages": list(stages), "collection": scope.collection_id, "pattern": scope.like_pattern},
            ).fetchone()
        return bool(row and row[0])

    def stage_counts(self, scope: Scope, stages: Sequence[str]) -> dict[str, StageCounts]:
        with self.db.autocommit() as conn:
            rows = conn.execute(
                f"""SELECT ps.stage, ps.status, count(*) FROM processing_status ps JOIN photo p ON p.id = ps.photo_id
                    WHERE ps.stage = ANY(%(stages)s) AND {_SCOPE}
                    GROUP BY ps.stage, ps.status""",  # noqa: S608
                {"stages": list(stages), "collection": scope.collection_id, "pattern": scope.like_pattern},
            ).fetchall()
        raw: dict[str, dict[str, int]] = {s: {} for s in stages}
        for stage, status, count in rows:
            raw[stage][status] = count
        return {s: StageCounts(**raw[s]) for s in stages}

    def skip_reasons(self, scope: Scope, stages: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per stage, why its rows in scope are skipped, with how many rows each reason covers."""
        with self.db.autocommit() as conn:
            rows = conn.execute(
                f"""SELECT ps.stage, coalesce(ps.error_message, ''), count(*)
                    FROM processing_status ps JOIN photo p ON p.id = ps.photo_id
                    WHERE ps.status = 'skipped' AND ps.stage = ANY(%(stages)s) AND {_SCOPE}
                    GROUP BY 1, 2 ORDER BY 3 DESC, 2""",  # noqa: S608
                {"stages": list(stages), "collection": scope.collection_id, "pattern": scope.like_pattern},
            ).fetchall()
        reasons: dict[str, dict[str, int]] = {s: {} for s in stages}
        for stage, reason, count in rows:
            reasons[stage][reason] = count
        return reasons

    def recent_errors(self, scope: Scope, stages: Sequence[str], limit: int = 5) -> list[StageError]:
        with self.db.autocommit() as conn:
            rows = conn.execute(
                f"""SELECT p.id, p.filename, ps.stage, ps.error_message, ps.processed_at
                    FROM processing_status ps JOIN photo p ON p.id = ps.photo_id
                    WHERE ps.status = 'failed' AND ps.stage = ANY(%(stages)s) AND {_SCOPE}
                    ORDER BY ps.processed_at DESC NULLS LAST, p.id LIMIT %(limit)s""",  # noqa: S608
                {
                    "stages": list(stages),
                    "collection": scope.collection_id,
                    "pattern": scope.like_pattern,
                    "limit": limit,
                },
            ).fetchall()
        return [StageError(*r) for r in rows]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
