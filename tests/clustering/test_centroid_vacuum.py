"""Centroid churn: the cluster table and its TOAST table are vacuumed after a few hundred dead
versions, and the embedded server's autovacuum looks every 10 s (migration 0015, embedded.py)."""

from __future__ import annotations

from photodb.database.embedded import SERVER_SETTINGS


def reloptions(conn, relation: str) -> dict[str, str]:
    row = conn.execute(
        """SELECT c.reloptions, t.reloptions FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
           WHERE c.oid = %s::regclass""",
        (relation,),
    ).fetchone()
    table, toast = (dict(option.split("=", 1) for option in options or ()) for options in row)
    return table | {f"toast.{name}": value for name, value in toast.items()}


def test_the_cluster_table_and_its_toast_are_vacuumed_after_a_few_hundred_dead_versions(db):
    with db.connection() as conn:
        options = reloptions(conn, "cluster")
    assert options["autovacuum_vacuum_threshold"] == "200"
    assert options["toast.autovacuum_vacuum_threshold"] == "400"  # a moved centroid is two TOAST chunks
    assert options["autovacuum_vacuum_scale_factor"] == options["toast.autovacuum_vacuum_scale_factor"] == "0.0"
    assert options["autovacuum_vacuum_cost_delay"] == options["toast.autovacuum_vacuum_cost_delay"] == "0"
    assert options["fillfactor"] == "70"  # room on the page for the HOT version of a still centroid


def test_the_embedded_server_runs_autovacuum_every_ten_seconds(db):
    """The tests' server is the embedded one, started with SERVER_SETTINGS."""
    with db.connection() as conn:
        naptime = conn.execute("SELECT setting::int, unit FROM pg_settings WHERE name = 'autovacuum_naptime'")
        assert naptime.fetchone() == (10, "s")
        assert conn.execute("SHOW autovacuum").fetchone() == ("on",)
    assert SERVER_SETTINGS["autovacuum_naptime"] == "10s"
