"""SQL of the people undo log (migration 0027): a change's record, the rows its trigger stored,
and putting rows back. Identifiers in the statements built here come from TRACKED and the
catalog, never from input; values are parameters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

#: The tables whose rows a decision writes, with their key column, parents before children (the
#: order rows are put back in; deletions go the other way).
TRACKED: dict[str, str] = {
    "person": "id",
    "cluster": "id",
    "person_detection": "id",
    "must_link": "id",
    "cannot_link": "id",
    "cluster_cannot_link": "id",
    "cluster_person_cannot_link": "id",
    "face_match_candidate": "candidate_id",
    "photo_date_estimate": "photo_id",
}


@dataclass(frozen=True)
class ChangeRow:
    id: int
    what: str
    created_by: str
    created_at: datetime
    undoes: int | None
    undone_by: int | None
    rows: int


@dataclass(frozen=True)
class NetRow:
    """One row's state before the change's first write to it and after its last (None: absent)."""

    table: str
    row_id: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def begin(conn: psycopg.Connection, what: str, by: str, *, undoes: int | None = None) -> int:
    """A new change; every tracked write of this transaction is recorded under it."""
    row = conn.execute(
        "INSERT INTO people_change (what, created_by, undoes) VALUES (%s, %s, %s) RETURNING id", (what, by, undoes)
    ).fetchone()
    assert row is not None
    resume(conn, row[0])
    return int(row[0])


def resume(conn: psycopg.Connection, change_id: int) -> None:
    """Record this transaction's writes under an existing change too (a decision in two steps)."""
    conn.execute("SELECT set_config('photodb.people_change', %s, true)", (str(change_id),))


def pause(conn: psycopg.Connection) -> None:
    conn.execute("SELECT set_config('photodb.people_change', '', true)")


def finish(conn: psycopg.Connection, change_id: int, what: str | None = None) -> int | None:
    """Stop recording; the change's id, or None (and no record) when it wrote nothing."""
    pause(conn)
    wrote = conn.execute("SELECT EXISTS (SELECT 1 FROM people_change_row WHERE change_id = %s)", (change_id,))
    if not wrote.fetchone()[0]:  # type: ignore[index]
        conn.execute("DELETE FROM people_change WHERE id = %s", (change_id,))
        return None
    if what is not None:
        conn.execute("UPDATE people_change SET what = %s WHERE id = %s", (what, change_id))
    return change_id


_CHANGE_COLUMNS = """c.id, c.what, c.created_by, c.created_at, c.undoes, c.undone_by,
                     (SELECT count(*) FROM people_change_row r WHERE r.change_id = c.id)"""


def history(conn: psycopg.Connection, limit: int | None) -> list[ChangeRow]:
    rows = conn.execute(
        f"SELECT {_CHANGE_COLUMNS} FROM people_change c ORDER BY c.id DESC LIMIT %s",  # noqa: S608
        (limit,),
    ).fetchall()
    return [ChangeRow(*r) for r in rows]


def get_change(conn: psycopg.Connection, change_id: int, *, lock: bool = False) -> ChangeRow | None:
    row = conn.execute(
        f"SELECT {_CHANGE_COLUMNS} FROM people_change c WHERE c.id = %s{' FOR UPDATE' if lock else ''}",  # noqa: S608
        (change_id,),
    ).fetchone()
    return ChangeRow(*row) if row else None


def last_undoable(conn: psycopg.Connection) -> int | None:
    """The latest change that is not undone and not itself an undo."""
    row = conn.execute("SELECT max(id) FROM people_change WHERE undone_by IS NULL AND undoes IS NULL").fetchone()
    return row[0] if row else None


def net_rows(conn: psycopg.Connection, change_id: int) -> list[NetRow]:
    rows = conn.execute(
        """SELECT table_name, row_id, (array_agg(old_row ORDER BY seq))[1], (array_agg(new_row ORDER BY seq DESC))[1]
           FROM people_change_row WHERE change_id = %s GROUP BY table_name, row_id ORDER BY table_name, row_id""",
        (change_id,),
    ).fetchall()
    return [NetRow(*r) for r in rows]


def current_rows(conn: psycopg.Connection, table: str, row_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The rows as they are now, locked (FOR UPDATE, id order)."""
    key = sql.Identifier(TRACKED[table])
    rows = conn.execute(
        sql.SQL("SELECT t.{key}, to_jsonb(t) FROM {table} t WHERE t.{key} = ANY(%s) ORDER BY 1 FOR UPDATE").format(
            key=key, table=sql.Identifier(table)
        ),
        (sorted(row_ids),),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def later_change(conn: psycopg.Connection, table: str, row_id: int, after: int) -> tuple[int, str] | None:
    """The latest change after `after` that wrote this row and is not undone."""
    row = conn.execute(
        """SELECT c.id, c.what FROM people_change_row r JOIN people_change c ON c.id = r.change_id
           WHERE r.table_name = %s AND r.row_id = %s AND r.change_id > %s AND c.undone_by IS NULL
           ORDER BY c.id DESC LIMIT 1""",
        (table, row_id, after),
    ).fetchone()
    return (row[0], row[1]) if row else None


def writable_columns(conn: psycopg.Connection, table: str) -> list[str]:
    """The table's columns a statement may write (not generated ones such as person.named)."""
    rows = conn.execute(
        """SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0
             AND NOT attisdropped AND attgenerated = '' ORDER BY attnum""",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def insert_row(conn: psycopg.Connection, table: str, values: dict[str, Any]) -> None:
    columns = [c for c in writable_columns(conn, table) if c in values]
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    conn.execute(
        sql.SQL("INSERT INTO {table} ({names}) SELECT {names} FROM jsonb_populate_record(NULL::{table}, %s)").format(
            table=sql.Identifier(table), names=names
        ),
        (Jsonb(values),),
    )


def update_row(conn: psycopg.Connection, table: str, row_id: int, values: dict[str, Any]) -> None:
    columns = [c for c in writable_columns(conn, table) if c in values]
    if not columns:
        return
    assignments = sql.SQL(", ").join(sql.SQL("{c} = r.{c}").format(c=sql.Identifier(c)) for c in columns)
    conn.execute(
        sql.SQL(
            "UPDATE {table} t SET {assignments} FROM jsonb_populate_record(NULL::{table}, %s) r WHERE t.{key} = %s"
        ).format(table=sql.Identifier(table), assignments=assignments, key=sql.Identifier(TRACKED[table])),
        (Jsonb(values), row_id),
    )


def delete_row(conn: psycopg.Connection, table: str, row_id: int) -> None:
    conn.execute(
        sql.SQL("DELETE FROM {table} WHERE {key} = %s").format(
            table=sql.Identifier(table), key=sql.Identifier(TRACKED[table])
        ),
        (row_id,),
    )


def mark_undone(conn: psycopg.Connection, change_id: int, undone_by: int) -> None:
    conn.execute("UPDATE people_change SET undone_by = %s WHERE id = %s", (undone_by, change_id))
