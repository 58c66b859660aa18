"""Migration 0007: the scene tables go with their photo or face, and reruns cannot duplicate rows."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from photodb.database.scene_repository import (
    DetectionTag,
    ModelOutput,
    PhotoTag,
    SceneRepository,
    SceneResults,
)

SCENE_TABLES = ("analysis_output", "photo_tag", "detection_tag", "scene_analysis", "photo_embedding")


def results(detection_id: int, model: str = "clip") -> SceneResults:
    vector = np.zeros(8, dtype=np.float32)
    vector[0] = 1
    return SceneResults(
        clip_model=model,
        image_embedding=vector,
        outputs=[ModelOutput(model, "1", {"scene": {}})],
        photo_tags=[PhotoTag("mood", "happy", 0.9, model)],
        detection_tags=[DetectionTag(detection_id, "emotion", "happy", 0.8, model)],
        scene_tags={"mood": ["happy"]},
        faces_tagged=1,
    )


def counts(conn: psycopg.Connection) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in SCENE_TABLES}  # noqa: S608


@pytest.fixture
def photo_with_face(db) -> tuple[int, int]:
    with db.connection() as conn:
        conn.execute("INSERT INTO photo (id, collection_id, filename) VALUES (1, 1, 'a.jpg')")
        conn.execute(
            "INSERT INTO person_detection (id, photo_id, face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height)"
            " VALUES (5, 1, 0, 0, 10, 10)"
        )
    return 1, 5


def test_the_image_embedding_has_an_hnsw_cosine_index(db):
    with db.connection() as conn:
        definition = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_photo_embedding'").fetchone()
    assert definition is not None and "hnsw" in definition[0] and "vector_cosine_ops" in definition[0]


def test_rows_go_with_their_photo_and_face_tags_with_their_face(db, photo_with_face):
    repository = SceneRepository(db)
    repository.replace_results(1, results(5))
    with db.connection() as conn:
        assert counts(conn) == dict.fromkeys(SCENE_TABLES, 1)
        conn.execute("DELETE FROM person_detection WHERE id = 5")
        assert conn.execute("SELECT count(*) FROM detection_tag").fetchone()[0] == 0
        conn.execute("DELETE FROM photo WHERE id = 1")
        assert counts(conn) == dict.fromkeys(SCENE_TABLES, 0)


def test_replacing_twice_keeps_one_set_and_other_models_embeddings(db, photo_with_face):
    repository = SceneRepository(db)
    repository.replace_results(1, results(5, "clip-a"))
    repository.replace_results(1, results(5, "clip-a"))
    repository.replace_results(1, results(5, "clip-b"))
    with db.connection() as conn:
        assert counts(conn) == {**dict.fromkeys(SCENE_TABLES, 1), "photo_embedding": 2}
        assert conn.execute("SELECT DISTINCT model_name FROM photo_tag").fetchall() == [("clip-b",)]
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO photo_tag (photo_id, category, label, confidence, model_name)"
                " VALUES (1, 'mood', 'happy', 0.5, 'clip-b')"
            )


def test_a_face_deleted_before_the_write_is_left_out(db, photo_with_face):
    stored = SceneRepository(db).replace_results(1, results(99))
    assert stored.detection_tags == 0 and stored.photo_tags == 1
    with pytest.raises(LookupError, match="photo 2 does not exist"):
        SceneRepository(db).replace_results(2, results(5))
