"""The server's pgvector is checked before clustering's SQL runs, with one clear line (issue 10, §4)."""

from __future__ import annotations

import pytest

from photodb.database.clustering.server import PGVECTOR_REQUIRED, PgvectorTooOld, check_pgvector, pgvector_problem


def test_the_running_server_is_new_enough_and_a_higher_requirement_says_so_clearly(db):
    with db.connection() as conn:
        check_pgvector(conn)
        installed = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        with pytest.raises(PgvectorTooOld) as raised:
            check_pgvector(conn, required=(99, 0, 0))
    message = str(raised.value)
    assert message == f"pgvector {installed} is too old: PhotoDB needs pgvector >= 99.0.0 on the database server"


def test_messages_for_old_missing_and_upgradable_extensions():
    assert pgvector_problem("0.8.0", "0.8.0") is None
    assert pgvector_problem("0.10.1", None) is None
    assert PGVECTOR_REQUIRED == (0, 8, 0)
    assert pgvector_problem("0.7.4", "0.8.1") == (
        "pgvector 0.7.4 is installed in this database but PhotoDB needs >= 0.8.0; "
        "the server has 0.8.1: run ALTER EXTENSION vector UPDATE"
    )
    assert "not installed" in (pgvector_problem(None, "0.8.1") or "")
    assert pgvector_problem("0.5.1", "0.5.1") == (
        "pgvector 0.5.1 is too old: PhotoDB needs pgvector >= 0.8.0 on the database server"
    )
