"""Real faces from examples/photos through the whole path, each step its own process as a user runs it:
process-local finds and embeds them (offline models), bootstrap_clusters.py groups them, then new
photos of the same people are assigned incrementally, by the detection stage as it finds them or
by `bootstrap_clusters.py --assign-new` afterwards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
from PIL import Image, ImageOps

from tests.cli import bootstrap_clusters, cli_env, process_local
from tests.samples import SAMPLES

PEOPLE = {
    "obama.jpg": "faces/face_recognition/obama.jpg",
    "obama2.jpg": "faces/face_recognition/obama2.jpg",
    "biden.jpg": "faces/face_recognition/biden.jpg",
    "grace_hopper.jpg": "faces/matplotlib/grace_hopper.jpg",
    "hopper.jpg": "faces/pillow/hopper.jpg",
    "group.jpg": "faces/vladmandic_face_api/sample1.jpg",
}


def mirrored(source: Path, target: Path) -> None:
    """Another photo of the same person: the mirror image, re-encoded."""
    with Image.open(source) as image:
        ImageOps.mirror(ImageOps.exif_transpose(image).convert("RGB")).save(target, quality=92)


def faces_by_file(database_url: str) -> dict[str, list[tuple[int | None, str | None]]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT p.filename, d.cluster_id, d.cluster_status FROM person_detection d
               JOIN photo p ON p.id = d.photo_id JOIN face_embedding f ON f.person_detection_id = d.id
               ORDER BY d.id"""
        ).fetchall()
    found: dict[str, list[tuple[int | None, str | None]]] = {}
    for filename, cluster_id, status in rows:
        found.setdefault(Path(filename).name, []).append((cluster_id, status))
    return found


def only_cluster(found: dict[str, list[tuple[int | None, str | None]]], name: str) -> int | None:
    (face,) = found[name]
    return face[0]


def test_sample_faces_cluster_by_person_and_new_photos_join_their_person(tmp_path, database_url):
    library = tmp_path / "lib"
    library.mkdir()
    for name, relative in PEOPLE.items():
        shutil.copy(SAMPLES / relative, library / name)
    # The expectations below (and CLUSTERING_THRESHOLD_DLIB) were measured with dlib's embeddings;
    # the default embedder's clustering of these faces is test_default_embedder_keeps_strangers_apart.
    # Clustering by hand here (the people step of process-local would bootstrap by itself).
    env = cli_env(
        tmp_path,
        database_url,
        DETECTION_BACKEND="offline",
        DETECTION_FORCE_CPU="true",
        FACE_EMBEDDER="dlib",
        UPDATE_PEOPLE_AFTER_INDEX="false",
    )

    first = process_local(str(library), "--json", env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["stages"]["detection"]["completed"] == len(PEOPLE)
    found = faces_by_file(database_url)
    assert {name: len(faces) for name, faces in found.items()} == {n: 3 if n == "group.jpg" else 1 for n in PEOPLE}
    assert all(cluster is None for faces in found.values() for cluster, _ in faces)  # no run yet: nothing assigned

    run = bootstrap_clusters("--min-cluster-size", "2", "--min-samples", "1", "--json", env=env)
    assert run.returncode == 0, run.stderr
    (report,) = json.loads(run.stdout)
    assert report["faces"] == 8 and report["clusters"] >= 2
    found = faces_by_file(database_url)
    obama, hopper = only_cluster(found, "obama.jpg"), only_cluster(found, "hopper.jpg")
    assert obama is not None and obama == only_cluster(found, "obama2.jpg")
    assert hopper is not None and hopper == only_cluster(found, "grace_hopper.jpg")
    assert obama != hopper
    # dlib puts the three women of the group photo closer to each other than to anyone else, so
    # whether they form a cluster is the model's call; they and Biden must not join Obama or Hopper
    strangers = [only_cluster(found, "biden.jpg")] + [cluster for cluster, _ in found["group.jpg"]]
    assert not {obama, hopper} & set(strangers)

    # a new process rebuilds tier 1 from the stored run; the detection stage assigns each new face as it is stored
    mirrored(SAMPLES / PEOPLE["obama2.jpg"], library / "obama_mirrored.jpg")
    second = process_local(str(library), "--json", env=env, timeout=600)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["stages"]["detection"]["completed"] == 1
    assert faces_by_file(database_url)["obama_mirrored.jpg"] == [(obama, "auto")]

    # with assignment on detection off, faces wait until --assign-new
    mirrored(SAMPLES / PEOPLE["grace_hopper.jpg"], library / "hopper_mirrored.jpg")
    third = process_local(str(library), env=env | {"CLUSTERING_ASSIGN_ON_DETECTION": "false"}, timeout=600)
    assert third.returncode == 0, third.stderr
    assert faces_by_file(database_url)["hopper_mirrored.jpg"] == [(None, None)]
    assign = bootstrap_clusters("--assign-new", "--json", env=env)
    assert assign.returncode == 0, assign.stderr
    assert json.loads(assign.stdout) == {"faces": 1, "assigned": 1, "outcomes": {"tier1": 1}}
    found = faces_by_file(database_url)
    assert found["hopper_mirrored.jpg"] == [(hopper, "auto")]
    assert found["biden.jpg"] == [(None, "unassigned")]  # the run's noise verdict stands
    again = bootstrap_clusters("--assign-new", env=env)
    assert again.returncode == 0 and again.stdout.strip() == "no faces waiting for a cluster"
    with psycopg.connect(database_url) as conn:
        counts = conn.execute(
            """SELECT c.id, c.face_count, count(d.id) FROM cluster c
               LEFT JOIN person_detection d ON d.cluster_id = c.id GROUP BY c.id"""
        ).fetchall()
    assert all(stored == members for _, stored, members in counts)
    assert {c: n for c, n, _ in counts}[obama] == 3 and {c: n for c, n, _ in counts}[hopper] == 3

    # --force redoes detection photo by photo: each face leaves its cluster and is assigned again
    rerun = process_local(str(library), "--stage", "detection", "--force", "--json", env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    found = faces_by_file(database_url)
    for name in ("obama.jpg", "obama2.jpg", "obama_mirrored.jpg"):
        assert found[name] == [(obama, "auto")]
    for name in ("hopper.jpg", "grace_hopper.jpg", "hopper_mirrored.jpg"):
        assert found[name] == [(hopper, "auto")]
    assert {only_cluster(found, "biden.jpg")} & {obama, hopper} == set()
    with psycopg.connect(database_url) as conn:
        assert conn.execute(
            """SELECT count(*) FROM cluster c
               WHERE face_count <> (SELECT count(*) FROM person_detection d WHERE d.cluster_id = c.id)"""
        ).fetchone() == (0,)


def test_default_embedder_keeps_strangers_apart(tmp_path, database_url):
    library = tmp_path / "lib"
    library.mkdir()
    for name, relative in PEOPLE.items():
        shutil.copy(SAMPLES / relative, library / name)
    env = cli_env(tmp_path, database_url, DETECTION_BACKEND="offline", DETECTION_FORCE_CPU="true")
    assert process_local(str(library), env=env, timeout=600).returncode == 0
    run = bootstrap_clusters("--min-cluster-size", "2", "--min-samples", "1", env=env)
    assert run.returncode == 0, run.stderr
    found = faces_by_file(database_url)
    obama, hopper = only_cluster(found, "obama.jpg"), only_cluster(found, "hopper.jpg")
    assert obama is not None and obama == only_cluster(found, "obama2.jpg")
    assert hopper is not None and hopper == only_cluster(found, "grace_hopper.jpg")
    group = [cluster for cluster, _ in found["group.jpg"]]
    assert not {obama, hopper} & {only_cluster(found, "biden.jpg"), *group}
    clustered = [c for c in group if c is not None]
    assert len(clustered) == len(set(clustered))  # one photo, three people
