import threading
from pathlib import Path

import psycopg
import pytest

from photodb.database.migrations import Migration, MigrationError, apply_migrations, load_migrations, render_schema

SPEC_TABLES = {
    "collection", "photo", "metadata", "processing_status", "llm_analysis", "batch_job", "person",
    "person_detection", "face_embedding", "cluster", "hdbscan_run", "face_match_candidate", "must_link",
    "cannot_link", "cluster_cannot_link", "cluster_person_cannot_link",
}  # fmt: skip


def test_schema_sql_is_the_rendered_migrations():
    schema = Path(__file__).resolve().parents[2] / "schema.sql"
    assert schema.read_text(encoding="utf-8") == render_schema(), "run: python scripts/render_schema.py"


def test_every_table_of_the_spec_exists_with_hnsw_vector_indexes(db):
    with db.connection() as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        hnsw = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE indexdef ILIKE '%USING hnsw%'")}
    assert tables >= SPEC_TABLES
    assert {"idx_face_embedding", "idx_cluster_centroid"} <= hnsw


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO processing_status (photo_id, stage, status) VALUES (1, 'normalize', 'done')",
        "INSERT INTO processing_status (photo_id, stage) VALUES (1, 'teleport')",
        "INSERT INTO person_detection (photo_id, face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height, gender)"
        " VALUES (1, 0, 0, 10, 10, 'X')",
        "INSERT INTO person_detection (photo_id) VALUES (1)",
        "INSERT INTO must_link (detection_id_1, detection_id_2) VALUES (2, 1)",
        "INSERT INTO metadata (photo_id, latitude, longitude) VALUES (1, 95, 0)",
    ],
)
def test_checks_reject_invalid_rows(db, statement):
    with db.connection() as conn:
        conn.execute("INSERT INTO photo (id, collection_id, filename) VALUES (1, 1, 'a.jpg')")
        conn.execute(
            "INSERT INTO person_detection (id, photo_id, face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height)"
            " SELECT g, 1, 0, 0, 5, 5 FROM generate_series(1, 2) g"
        )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(statement)


def test_deleting_a_photo_removes_its_rows_but_a_person_survives_its_cluster(db):
    with db.connection() as conn:
        conn.execute("INSERT INTO photo (id, collection_id, filename) VALUES (1, 1, 'a.jpg')")
        conn.execute("INSERT INTO processing_status (photo_id, stage) VALUES (1, 'normalize')")
        conn.execute("INSERT INTO person (id, collection_id, first_name) VALUES (7, 1, 'Ada')")
        conn.execute("INSERT INTO cluster (id, collection_id, embedding_model, person_id) VALUES (3, 1, 'm', 7)")
        conn.execute(
            "INSERT INTO person_detection (photo_id, body_bbox_x, body_bbox_y, body_bbox_width, body_bbox_height,"
            " cluster_id, person_id) VALUES (1, 0, 0, 5, 5, 3, 7)"
        )
        conn.execute("DELETE FROM photo WHERE id = 1")
        assert conn.execute("SELECT count(*) FROM processing_status").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM person_detection").fetchone()[0] == 0
        conn.execute("DELETE FROM cluster WHERE id = 3")
        assert conn.execute("SELECT first_name FROM person").fetchone()[0] == "Ada"


def test_migrations_are_recorded_and_not_reapplied(database_url):
    with psycopg.connect(database_url) as conn:
        assert apply_migrations(conn) == []
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [m.version for m in load_migrations()]


def test_an_edited_migration_is_refused(database_url):
    edited = [Migration(m.version, m.name, m.sql + "\n-- edited") for m in load_migrations()]
    with psycopg.connect(database_url) as conn, pytest.raises(MigrationError, match="edited after it was applied"):
        apply_migrations(conn, edited)


def test_concurrent_starts_apply_a_new_migration_once(database_url):
    extra = [*load_migrations(), Migration(999, "concurrency_probe", "CREATE TABLE probe (id int);")]
    results: list[list[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            with psycopg.connect(database_url) as conn:
                barrier.wait()
                results.append(apply_migrations(conn, extra))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(results) == [[], [], [], [999]]


def test_a_failing_migration_leaves_nothing_behind(database_url):
    broken = [*load_migrations(), Migration(998, "half", "CREATE TABLE half_done (id int); SELECT 1/0;")]
    with psycopg.connect(database_url) as conn:
        with pytest.raises(MigrationError, match="0998_half failed"):
            apply_migrations(conn, broken)
        assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM schema_migrations WHERE version = 998").fetchone()[0] == 0


def test_the_default_collection_is_created(db):
    with db.connection() as conn:
        assert conn.execute("SELECT name FROM collection").fetchall() == [("default",)]


def test_no_btree_index_is_a_leading_prefix_of_another(db):
    """Every index costs a write on each non-HOT update (an assignment rewrites person_detection's
    cluster_id): a plain btree whose key columns lead another plain btree's is pure cost."""
    with db.connection() as conn:
        redundant = conn.execute(
            """WITH btree AS (
                   SELECT i.indexrelid::regclass::text AS name, i.indrelid,
                          ARRAY(SELECT k FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS u(k, ord)
                                WHERE ord <= i.indnkeyatts ORDER BY ord) AS cols
                   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE a.amname = 'btree' AND n.nspname = 'public' AND i.indpred IS NULL
                     AND i.indexprs IS NULL AND NOT i.indisunique)
               SELECT shorter.name, longer.name FROM btree shorter JOIN btree longer
                 ON longer.indrelid = shorter.indrelid AND longer.name <> shorter.name
                AND cardinality(longer.cols) > cardinality(shorter.cols)
                AND longer.cols[1:cardinality(shorter.cols)] = shorter.cols"""
        ).fetchall()
    assert redundant == []
