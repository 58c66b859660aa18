"""Weekly maintenance never undoes good grouping, for each packaged embedder, on real labelled faces
(tests/labelled_faces.py), each step its own process as a user runs it: `photodb index`,
`photodb cluster`, then `photodb maintenance weekly` twice (the second sees the singleton clusters
the first made of the faces the bootstrap left alone). What a person sees as one person (the
cluster's person, else the cluster) must score a pairwise F1 no lower than after the bootstrap, and
no two faces of different people that the bootstrap kept apart may end together."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import psycopg
import pytest

from photodb.clustering.scores import grouping_scores
from tests.cli import PHOTODB, cli_env, run_command
from tests.labelled_faces import write_library

#: How much pairwise F1 weekly may lose (one face pair of a few hundred).
F1_MARGIN = 0.01


def grouping(database_url: str) -> dict[int, tuple[str, tuple[str, int] | None]]:
    """Each face: its file name and its group (('person', id), ('cluster', id), or None)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT d.id, p.filename, d.cluster_id, c.person_id FROM person_detection d
               JOIN photo p ON p.id = d.photo_id JOIN face_embedding f ON f.person_detection_id = d.id
               LEFT JOIN cluster c ON c.id = d.cluster_id ORDER BY d.id"""
        ).fetchall()
    return {
        face: (
            Path(filename).name,
            ("person", person) if person is not None else ("cluster", cluster) if cluster is not None else None,
        )
        for face, filename, cluster, person in rows
    }


@pytest.mark.parametrize("embedder", ["mbf", "sface", "dlib"])
def test_weekly_keeps_the_bootstrap_grouping_of_real_faces(tmp_path, database_url, embedder):
    truth = write_library(tmp_path / "lib")
    env = cli_env(
        tmp_path,
        database_url,
        DETECTION_BACKEND="offline",
        DETECTION_FORCE_CPU="true",
        FACE_EMBEDDER=embedder,
        UNASSIGNED_SINGLETON_DAYS="0",
    )
    steps = (["index", str(tmp_path / "lib"), "--stage", "normalize", "--stage", "detection"], ["cluster"])
    for step in steps:
        done = run_command([PHOTODB, *step], env=env, timeout=900)
        assert done.returncode == 0, (step, done.stdout, done.stderr)
    before = grouping(database_url)
    assert len(before) >= len(truth) * 0.9  # nearly every photo's face was found
    for _ in range(2):
        weekly = run_command([PHOTODB, "maintenance", "weekly", "--json"], env=env, timeout=900)
        assert weekly.returncode == 0, (weekly.stdout, weekly.stderr)
    after = grouping(database_url)
    assert after.keys() == before.keys()

    faces = sorted(before)
    labels = [truth[before[f][0]] for f in faces]
    scored_before = grouping_scores(labels, [before[f][1] for f in faces])
    scored_after = grouping_scores(labels, [after[f][1] for f in faces])
    assert scored_before.f1 > 0.5  # the bootstrap found the people: there is a grouping to keep
    assert scored_after.f1 >= scored_before.f1 - F1_MARGIN, (scored_before, scored_after)
    joined_wrongly = [
        (before[a][0], before[b][0])
        for a, b in combinations(faces, 2)
        if truth[before[a][0]] != truth[before[b][0]]
        and after[a][1] is not None
        and after[a][1] == after[b][1]
        and (before[a][1] is None or before[a][1] != before[b][1])
    ]
    assert joined_wrongly == [], joined_wrongly[:5]
    report = {t["task"]: t for t in json.loads(weekly.stdout)["tasks"]}["merge-similar"]
    assert report["ok"]
