"""A small generated library whose every search answer is known, written with plain SQL.

    photo  captured          camera             GPS         tags        faces (person / cluster)
    1      2019-07-04 10:00  Apple iPhone 12    Paris       beach       Grace (cluster 10, smiling), Alan (own id)
    2      2019-12-25 09:00  Canon EOS 5D       London      snow        Grace (own person_id)
    3      2021-07-04 18:30  Apple iPhone 8     -           beach, dog  Alan (cluster 11)
    4      - (no metadata)   -                  -           -           unnamed cluster 12
    5      2020-03-01 12:00  NIKON D750         near Paris  -           -

LLM analyses: 1 "birthday cake on the beach" (objects cake, umbrella; tags party, summer; a sandy
beach), 2 "children running through snowy streets" (sled; winter; a city street), 3 "a dog runs
after a ball". Files are a.jpg ... e.jpg under /photos.

Image embeddings (model mobileclip:s2): photos 1, 2, 3, 5 along directions whose nearest to photo
1 is 2, then 5, then 3. Face embeddings (arcface:w600k_r50): Grace's face in photo 1 (detection
101) is nearest Grace's face in photo 2 (103), then Alan's in photo 3 (104).
"""

from __future__ import annotations

import numpy as np

from photodb.database.connection import Database

ROOT = "/photos"
IMAGE_MODEL = "mobileclip:s2"
FACE_MODEL = "arcface:w600k_r50"
GRACE, ALAN, ADA = 1, 2, 3


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(512, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


IMAGE_VECTORS = {1: unit(1, 0, 0), 2: unit(1, 0.2, 0), 3: unit(0, 0, 1), 5: unit(1, 1, 0)}
FACE_VECTORS = {
    101: unit(0, 1, 0),
    102: unit(1, 0, 0),
    103: unit(0.1, 1, 0),
    104: unit(0.5, 1, 0.6),
    105: unit(0, 0, 1),
}


def build_library(db: Database) -> None:
    with db.connection() as conn, conn.transaction():
        conn.execute("UPDATE collection SET root_path = %s WHERE id = 1", (ROOT,))
        conn.execute(
            """INSERT INTO photo (id, collection_id, filename, normalized_path)
               SELECT i, 1, f, 'norm/' || i || '.png' FROM unnest(%s::int[], %s::text[]) AS t(i, f)""",
            ([1, 2, 3, 4, 5], ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]),
        )
        conn.execute(
            """INSERT INTO metadata (photo_id, captured_at, camera_make, camera_model, latitude, longitude) VALUES
               (1, '2019-07-04 10:00', 'Apple', 'iPhone 12', 48.8566, 2.3522),
               (2, '2019-12-25 09:00', 'Canon', 'Canon EOS 5D', 51.5074, -0.1278),
               (3, '2021-07-04 18:30', 'Apple', 'iPhone 8', NULL, NULL),
               (5, '2020-03-01 12:00', 'NIKON CORPORATION', 'NIKON D750', 48.8600, 2.3500)"""
        )
        conn.execute(
            """INSERT INTO person (id, collection_id, first_name, last_name, created_by) VALUES
               (1, 1, 'Grace', 'Hopper', 'user'), (2, 1, 'Alan', 'Turing', 'user'), (3, 1, 'Ada', NULL, 'user')"""
        )
        conn.execute(
            """INSERT INTO cluster (id, collection_id, embedding_model, person_id) VALUES
               (10, 1, %(m)s, 1), (11, 1, %(m)s, 2), (12, 1, %(m)s, NULL)""",
            {"m": FACE_MODEL},
        )
        conn.execute(
            """INSERT INTO person_detection (id, photo_id, face_bbox_x, face_bbox_y, face_bbox_width,
                                             face_bbox_height, cluster_id, person_id) VALUES
               (101, 1, 0, 0, 50, 50, 10, NULL), (102, 1, 60, 0, 50, 50, NULL, 2),
               (103, 2, 0, 0, 50, 50, NULL, 1), (104, 3, 0, 0, 50, 50, 11, NULL),
               (105, 4, 0, 0, 50, 50, 12, NULL)"""
        )
        for detection, vector in FACE_VECTORS.items():
            conn.execute(
                """INSERT INTO face_embedding (person_detection_id, embedding_model, embedding_dim, embedding)
                   VALUES (%s, %s, 512, %s)""",
                (detection, FACE_MODEL, vector),
            )
        for photo, vector in IMAGE_VECTORS.items():
            conn.execute(
                "INSERT INTO photo_embedding (photo_id, model_name, embedding_dim, embedding) VALUES (%s, %s, 512, %s)",
                (photo, IMAGE_MODEL, vector),
            )
        conn.execute(
            """INSERT INTO photo_tag (photo_id, category, label, confidence, model_name) VALUES
               (1, 'setting', 'beach', 0.9, 'm'), (2, 'weather', 'snow', 0.8, 'm'),
               (3, 'setting', 'beach', 0.7, 'm'), (3, 'object', 'dog', 0.9, 'yolo')"""
        )
        conn.execute(
            """INSERT INTO detection_tag (person_detection_id, category, label, confidence, model_name) VALUES
               (101, 'expression', 'smiling', 0.9, 'm'), (103, 'expression', 'neutral', 0.8, 'm')"""
        )
        conn.execute(
            """INSERT INTO llm_analysis (photo_id, model_name, description, objects, location_description, analysis)
               VALUES
               (1, 'llm', 'Two friends share a birthday cake on the beach.', '{cake,umbrella}', 'a sandy beach',
                '{"tags": ["party", "summer"]}'),
               (2, 'llm', 'Children running through snowy streets.', '{sled}', 'a city street',
                '{"tags": ["winter"]}'),
               (3, 'llm', 'A dog runs after a ball.', '{dog,ball}', NULL, '{}')"""
        )
