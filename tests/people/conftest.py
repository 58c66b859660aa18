"""A small library of generated faces, clustered, and `photodb` run as a user runs it (CliRunner)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from photodb.cli import photodb
from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.synthetic import make_faces
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database


@dataclass
class Library:
    ids: list[int]
    identities: np.ndarray

    def clusters(self, db: Database) -> dict[int, list[int]]:
        """Cluster id -> its faces, biggest first."""
        with db.connection() as conn:
            rows = conn.execute(
                "SELECT cluster_id, array_agg(id ORDER BY id) FROM person_detection "
                "WHERE cluster_id IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1"
            ).fetchall()
        return {r[0]: r[1] for r in rows}


@pytest.fixture
def library(db: Database) -> Library:
    faces = make_faces(260, 14, noise_share=0.05, lookalike_share=0.0, seed=7)
    with db.connection() as conn:
        ids = face_db.insert_faces(conn, 1, faces.embeddings, "arcface")
    bootstrap(db)
    return Library(ids, faces.identities)


Cli = Callable[..., Result]


@pytest.fixture
def cli(settings, monkeypatch, tmp_path) -> Cli:
    """Run `photodb ARGS...` in this test's database; returns click's Result (stdout, stderr, exit)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("PHOTODB_HOME", str(settings.photodb_home))
    monkeypatch.setenv("IMG_PATH", str(settings.img_path))

    def run(*args: Any) -> Result:
        return CliRunner().invoke(photodb, [str(a) for a in args])

    return run


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def snapshot(db: Database) -> str:
    """A digest of every identity decision and assignment: equal before and after = nothing written."""
    queries = [
        "SELECT * FROM person ORDER BY id",
        """SELECT id, person_id, verified, verified_at, verified_by, hidden, hidden_by, person_linked_by,
                  face_count, centroid_sum::text FROM cluster ORDER BY id""",
        "SELECT id, cluster_id, cluster_status, person_id, assigned_by FROM person_detection ORDER BY id",
        "SELECT detection_id_1, detection_id_2, created_by FROM must_link ORDER BY 1, 2",
        "SELECT detection_id_1, detection_id_2, created_by FROM cannot_link ORDER BY 1, 2",
        "SELECT cluster_id, person_id, created_by FROM cluster_person_cannot_link ORDER BY 1, 2",
    ]
    digest = hashlib.sha256()
    with db.connection() as conn:
        for query in queries:
            digest.update(repr(conn.execute(query).fetchall()).encode())
    return digest.hexdigest()
