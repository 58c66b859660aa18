"""The search benchmark's synthetic library: generated rows, written with COPY, kept between runs.

See bench/search.py for what it holds and how it is timed.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

IMAGE_MODEL = "mobileclip:s2"
FACE_MODEL = "arcface:w600k_r50"
TOPICS, CITIES, PERSONS, UNNAMED, FACE_EMBEDDINGS = 200, 20, 300, 100, 30_000
CAMERAS = [
    ("Apple", "iPhone 8"), ("Apple", "iPhone 12"), ("Apple", "iPhone 15 Pro"), ("Canon", "Canon EOS 5D"),
    ("Canon", "Canon EOS R6"), ("NIKON CORPORATION", "NIKON D750"), ("SONY", "ILCE-7M3"), ("FUJIFILM", "X-T3"),
    ("samsung", "SM-G991B"), ("Google", "Pixel 7"), ("OLYMPUS", "E-M10"), ("Panasonic", "DMC-GX80"),
]  # fmt: skip
SCENE_LABELS = [f"scene{i}" for i in range(40)]
FACE_LABELS = ["smiling", "neutral", "laughing", "serious", "eyes_closed", "looking_away"]


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def zipf_ranks(rng: np.random.Generator, count: int, size: int | tuple[int, int]) -> np.ndarray:
    """Ranks 0..count-1 drawn with probability proportional to 1 / (rank + 1): a few common, many rare."""
    weights = 1 / np.arange(1, count + 1)
    return rng.choice(count, size=size, p=weights / weights.sum())


class Library:
    """The synthetic rows, kept so that queries can be built from real photos."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.n = n
        self.centers = unit_rows(rng.normal(size=(TOPICS, 512)))
        self.topic = rng.integers(0, TOPICS, n)
        self.images = unit_rows(self.centers[self.topic] + rng.normal(scale=0.75 / np.sqrt(512) * 1.0, size=(n, 512)))
        start = date(2000, 1, 1).toordinal()
        self.days = rng.integers(0, 25 * 365, n) + start
        self.dated = rng.random(n) > 0.05
        self.camera = rng.integers(0, len(CAMERAS), n)
        cities = np.column_stack([rng.uniform(-50, 60, CITIES), rng.uniform(-120, 140, CITIES)])
        self.city = rng.integers(0, CITIES, n)
        self.gps = rng.random(n) < 0.6
        self.position = cities[self.city] + rng.normal(scale=0.05, size=(n, 2))
        self.tags = np.stack([rng.choice(len(SCENE_LABELS), 3, replace=False) for _ in range(n)])
        faces = rng.poisson(1.2, n)
        self.face_photo = np.repeat(np.arange(n), faces)
        clusters = PERSONS + UNNAMED
        self.face_cluster = zipf_ranks(rng, clusters, self.face_photo.size)
        self.own_person = rng.random(self.face_photo.size) < 0.1
        self.face_tag = rng.integers(0, len(FACE_LABELS), self.face_photo.size)
        cluster_centers = unit_rows(rng.normal(size=(clusters, 512)))
        embedded = min(FACE_EMBEDDINGS, self.face_photo.size)
        self.face_vectors = unit_rows(
            cluster_centers[self.face_cluster[:embedded]] + rng.normal(scale=0.05, size=(embedded, 512))
        )
        vocabulary = np.array([f"word{i}" for i in range(2000)])
        self.words = vocabulary[zipf_ranks(rng, len(vocabulary), (n, 12))]
        self.objects = rng.integers(0, 100, (n, 3))
        # Undated photos get a year estimated from faces (people.dates): the true year, off by its spread.
        self.estimate_sd = rng.uniform(1.0, 6.0, n)
        self.estimate_year = 2000 + (self.days - start) / 365.25 + rng.normal(size=n) * self.estimate_sd

    def captured(self, photo: int) -> datetime | None:
        return datetime.fromordinal(int(self.days[photo])) + timedelta(hours=12) if self.dated[photo] else None


def copy_rows(conn: psycopg.Connection, statement: str, rows: object, types: list[str] | None = None) -> None:
    with conn.cursor().copy(statement) as copy:
        if types:
            copy.set_types(types)
        for row in rows:  # type: ignore[attr-defined]
            copy.write_row(row)


def load(url: str, lib: Library) -> float:
    """Bench setup: COPY every table with the vector and text indexes dropped, then build them once."""
    started = time.perf_counter()
    n = lib.n
    with psycopg.connect(url) as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        for index in ("idx_photo_embedding", "idx_face_embedding", "idx_llm_analysis_search"):
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
        conn.execute("UPDATE collection SET root_path = '/bench' WHERE id = 1")
        copy_rows(
            conn,
            "COPY photo (id, collection_id, filename, normalized_path) FROM STDIN",
            ((i + 1, 1, f"d{i % 1000}/p{i + 1}.jpg", f"n/{i + 1}.png") for i in range(n)),
        )
        copy_rows(
            conn,
            "COPY metadata (photo_id, captured_at, camera_make, camera_model, latitude, longitude) FROM STDIN",
            (
                (
                    i + 1,
                    lib.captured(i),
                    *CAMERAS[lib.camera[i]],
                    *(lib.position[i].tolist() if lib.gps[i] else (None, None)),
                )
                for i in range(n)
            ),
        )
        copy_rows(
            conn,
            "COPY person (id, collection_id, first_name, last_name) FROM STDIN",
            ((p + 1, 1, f"First{p + 1}", f"Last{p + 1}") for p in range(PERSONS)),
        )
        copy_rows(
            conn,
            "COPY cluster (id, collection_id, embedding_model, person_id) FROM STDIN",
            ((c + 1, 1, FACE_MODEL, c + 1 if c < PERSONS else None) for c in range(PERSONS + UNNAMED)),
        )
        copy_rows(
            conn,
            "COPY person_detection (id, photo_id, face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height, "
            "cluster_id, person_id) FROM STDIN",
            (
                (
                    d + 1,
                    int(lib.face_photo[d]) + 1,
                    0,
                    0,
                    40,
                    40,
                    int(lib.face_cluster[d]) + 1,
                    int(lib.face_cluster[d]) + 1 if lib.own_person[d] and lib.face_cluster[d] < PERSONS else None,
                )
                for d in range(lib.face_photo.size)
            ),
        )
        copy_rows(
            conn,
            "COPY face_embedding (person_detection_id, embedding_model, embedding_dim, embedding) "
            "FROM STDIN WITH (FORMAT BINARY)",
            ((d + 1, FACE_MODEL, 512, lib.face_vectors[d]) for d in range(len(lib.face_vectors))),
            ["bigint", "text", "integer", "vector"],
        )
        copy_rows(
            conn,
            "COPY photo_embedding (photo_id, model_name, embedding_dim, embedding) FROM STDIN WITH (FORMAT BINARY)",
            ((i + 1, IMAGE_MODEL, 512, lib.images[i]) for i in range(n)),
            ["bigint", "text", "integer", "vector"],
        )
        copy_rows(
            conn,
            "COPY photo_tag (photo_id, category, label, confidence, model_name) FROM STDIN",
            ((i + 1, "setting", SCENE_LABELS[t], 0.8, "clip") for i in range(n) for t in lib.tags[i]),
        )
        copy_rows(
            conn,
            "COPY detection_tag (person_detection_id, category, label, confidence, model_name) FROM STDIN",
            ((d + 1, "expression", FACE_LABELS[lib.face_tag[d]], 0.8, "clip") for d in range(lib.face_photo.size)),
        )
        copy_rows(
            conn,
            "COPY photo_date_estimate (photo_id, estimated_year, stddev_years, persons) FROM STDIN",
            (
                (i + 1, float(lib.estimate_year[i]), float(lib.estimate_sd[i]), "[]")
                for i in range(n)
                if not lib.dated[i]
            ),
        )
        copy_rows(
            conn,
            "COPY llm_analysis (photo_id, model_name, description, objects, analysis) FROM STDIN",
            (
                (
                    i + 1,
                    "llm",
                    " ".join(lib.words[i]),
                    [f"object{o}" for o in lib.objects[i]],
                    json.dumps({"tags": [str(w) for w in lib.words[i][:3]]}),
                )
                for i in range(n)
            ),
        )
        conn.commit()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        conn.execute("CREATE INDEX idx_photo_embedding ON photo_embedding USING hnsw (embedding vector_cosine_ops)")
        conn.execute("CREATE INDEX idx_face_embedding ON face_embedding USING hnsw (embedding vector_cosine_ops)")
        conn.execute("CREATE INDEX idx_llm_analysis_search ON llm_analysis USING GIN (search_vector)")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def loaded(admin_url: str, name: str) -> bool:
    """Whether database `name` holds a finished bench library (mark_loaded ran after its load)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            return False
    with psycopg.connect(make_conninfo(admin_url, dbname=name), autocommit=True) as conn:
        return conn.execute("SELECT to_regclass('bench_loaded') IS NOT NULL").fetchone() == (True,)


def mark_loaded(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_loaded ()")
