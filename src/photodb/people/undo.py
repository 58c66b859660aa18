"""The undo log of people decisions (migration 0027): `photodb people history` and `undo`.

Every decision of `photodb people` and the page runs in people.identity.recorded (split and
review call change_repository.begin themselves): a row trigger stores each row it wrote, before
and after. Undo puts each row back as it was before the change: rows it deleted are inserted
again (parents first), rows it changed get their old values in the columns it changed, rows it
inserted are deleted (children first). That is exact for merges and splits too: the sums,
counts, links and constraints the change wrote are restored as stored, not recomputed.

A change is undone only when every column it wrote still holds what it wrote. When a later
change (or automatic work: clustering, maintenance) has written one of them since, undo refuses
with one line naming that later change: undo it first (changes are undone newest first). The
undo is itself a change, so undoing it redoes the original.
"""

from __future__ import annotations

from typing import Any

from photodb.database import change_repository as change_db
from photodb.database.clustering import locks as lock_db
from photodb.database.connection import Database
from photodb.people.identity import PeopleError, transaction

#: Columns that only say when a row was last written: restored, never a reason to refuse.
BOOKKEEPING = frozenset({"updated_at"})

#: The order rows are locked in: the one lock order's detections, clusters, persons, then the rest.
LOCK_ORDER = [
    "person_detection",
    "cluster",
    "person",
    *(t for t in change_db.TRACKED if t not in ("person_detection", "cluster", "person")),
]


def history(db: Database, limit: int | None = 50) -> list[dict[str, Any]]:
    with db.connection() as conn:
        return [
            {
                "id": c.id,
                "what": c.what,
                "by": c.created_by,
                "at": c.created_at,
                "rows": c.rows,
                "undoes": c.undoes,
                "undone_by": c.undone_by,
            }
            for c in change_db.history(conn, limit)
        ]


def undo(db: Database, change_id: int | None = None, *, by: str) -> dict[str, Any]:
    """Revert one change (the latest one not undone when None); PeopleError when it cannot be."""
    with transaction(db) as conn:
        if change_id is None:
            change_id = change_db.last_undoable(conn)
            if change_id is None:
                raise PeopleError("nothing to undo")
        change = change_db.get_change(conn, change_id, lock=True)
        if change is None:
            raise PeopleError(f"no change {change_id}")
        if change.undone_by is not None:
            raise PeopleError(f"change {change_id} was undone already (by change {change.undone_by})")
        net = change_db.net_rows(conn, change_id)
        _lock(conn, net)
        _check(conn, change_id, net)
        undo_id = change_db.begin(conn, f"undo change {change_id}: {change.what}", by, undoes=change_id)
        _restore(conn, net)
        change_db.finish(conn, undo_id)
        change_db.mark_undone(conn, change_id, undo_id)
    return {"change_id": undo_id, "undone": change_id, "what": change.what, "rows": len(net)}


def _lock(conn: Any, net: list[change_db.NetRow]) -> None:
    """The model locks (shared) of the clusters involved, then their rows in the one lock order."""
    models: dict[int, set[str]] = {}
    for row in net:
        if row.table == "cluster":
            for state in (row.before, row.after):
                if state is not None:
                    models.setdefault(state["collection_id"], set()).add(state["embedding_model"])
    for collection_id, names in sorted(models.items()):
        lock_db.lock_models(conn, collection_id, names)


def _check(conn: Any, change_id: int, net: list[change_db.NetRow]) -> None:
    by_table: dict[str, list[change_db.NetRow]] = {}
    for row in net:
        by_table.setdefault(row.table, []).append(row)
    for table in LOCK_ORDER:
        rows = by_table.get(table, [])
        if not rows:
            continue
        current = change_db.current_rows(conn, table, [r.row_id for r in rows])
        for row in rows:
            if not _still_as_left(row, current.get(row.row_id)):
                later = change_db.later_change(conn, table, row.row_id, change_id)
                thing = f"{table.replace('_', ' ')} {row.row_id}"
                if later is not None:
                    raise PeopleError(
                        f"change {later[0]} ({later[1]}) changed {thing} since: undo change {later[0]} first"
                    )
                raise PeopleError(
                    f"{thing} was changed since by automatic work (clustering or maintenance): "
                    f"change {change_id} can no longer be undone exactly"
                )


def _still_as_left(row: change_db.NetRow, now: dict[str, Any] | None) -> bool:
    """Whether every column the change wrote holds what it wrote."""
    if row.after is None:
        return now is None
    if now is None:
        return False
    columns = set(row.after) if row.before is None else {k for k in row.after if row.before.get(k) != row.after[k]}
    return all(now.get(k) == row.after[k] for k in columns - BOOKKEEPING)


def _restore(conn: Any, net: list[change_db.NetRow]) -> None:
    order = list(change_db.TRACKED)
    rank = {table: i for i, table in enumerate(order)}
    deleted = sorted((r for r in net if r.after is None), key=lambda r: (rank[r.table], r.row_id))
    changed = sorted((r for r in net if r.after is not None and r.before is not None), key=lambda r: rank[r.table])
    inserted = sorted((r for r in net if r.before is None), key=lambda r: (-rank[r.table], r.row_id))
    for row in deleted:
        assert row.before is not None
        change_db.insert_row(conn, row.table, row.before)
    for row in changed:
        assert row.before is not None and row.after is not None
        old = {k: v for k, v in row.before.items() if v != row.after.get(k)}
        change_db.update_row(conn, row.table, row.row_id, old)
    for row in inserted:
        change_db.delete_row(conn, row.table, row.row_id)
