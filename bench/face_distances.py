"""The figures behind the face distance table (photodb.clustering.distances), measured the same
way for every packaged embedder on labelled faces (faces-dev, indexed by bench/weekly_grouping.py;
skipped with a message when absent).

    nice -n 10 .venv/bin/python bench/face_distances.py

Per embedder, the face nearest the centre of each photo and its (source, identity). Each rule's
distance is read where the different-people distances of what that rule compares reach a false
match rate (the share of different-people pairs within the distance):
- ``pair`` (two single faces start a cluster): face pairs, FMR 1e-4;
- ``merge`` (face pairs across two clusters, most of which must be within it): face pairs, FMR 1e-3;
- ``assign`` (a face and a centroid): each face against its identity's other faces' centroid and
  against the centroids of the other identities (two faces or more), FMR 1e-3;
- ``associate`` (two centroids, complete linkage): the two halves of each identity with four faces
  or more, against the halves of the other identities, FMR 1e-3.
Printed beside each: the share of same-person pairs within it (true match rate), and the table's
value with its FMR and TMR.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cache_dir, embedded_server
from weekly_grouping import EMBEDDERS, faces_dev_folder, indexed_library, truth_of

from photodb.clustering.distances import RULES, face_distance
from photodb.config import Settings
from photodb.database.clustering.faces import array_of

MODEL = {"mbf": "arcface:w600k_mbf", "sface": "sface:2021dec", "dlib": "dlib:resnet_v1"}
FMR = {"pair": 1e-4, "merge": 1e-3, "assign": 1e-3, "associate": 1e-3}


def central_faces(home: Path, truth: dict[str, tuple[str, str]]) -> tuple[np.ndarray, list[tuple[str, str]]]:
    with embedded_server(home) as admin, psycopg.connect(make_conninfo(admin, dbname="photodb")) as conn:
        register_vector(conn)
        with conn.cursor(binary=True) as cur:
            cur.execute(
                """SELECT DISTINCT ON (p.id) p.filename, f.embedding
                   FROM person_detection d JOIN photo p ON p.id = d.photo_id
                   JOIN face_embedding f ON f.person_detection_id = d.id
                   ORDER BY p.id, abs(d.face_bbox_x + d.face_bbox_width / 2 - p.normalized_width / 2.0)
                                + abs(d.face_bbox_y + d.face_bbox_height / 2 - p.normalized_height / 2.0)"""
            )
            rows = [(name, array_of(e)) for name, e in cur.fetchall() if name in truth]
    vectors = np.vstack([v for _, v in rows]).astype(np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, [truth[name] for name, _ in rows]


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def measured(vectors: np.ndarray, labels: list[tuple[str, str]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per rule: (same-person distances, different-people distances)."""
    codes = np.unique(np.array([f"{s}/{i}" for s, i in labels]), return_inverse=True)[1]
    upper = np.triu(np.ones((len(codes), len(codes)), bool), 1)
    d = 1.0 - vectors @ vectors.T
    same_pairs = codes[:, None] == codes[None, :]
    faces = (d[upper & same_pairs], d[upper & ~same_pairs])
    members = {c: np.nonzero(codes == c)[0] for c in np.unique(codes)}
    sums = {c: vectors[idx].sum(0) for c, idx in members.items()}
    assign_same, assign_diff = [], []
    centroid_ids = [c for c, idx in members.items() if len(idx) >= 2]
    centroids = unit(np.vstack([sums[c] for c in centroid_ids]))
    for i, c in enumerate(codes):
        if len(members[c]) >= 3:
            assign_same.append(1.0 - vectors[i] @ unit(sums[c] - vectors[i]))
        others = np.array([k != c for k in centroid_ids])
        assign_diff.extend(1.0 - centroids[others] @ vectors[i])
    halves, owners = [], []
    for c, idx in members.items():
        if len(idx) >= 4:
            halves += [unit(vectors[idx[::2]].sum(0)), unit(vectors[idx[1::2]].sum(0))]
            owners += [c, c]
    h = np.vstack(halves)
    owner = np.array(owners)
    hd = 1.0 - h @ h.T
    hu = np.triu(np.ones((len(owner), len(owner)), bool), 1)
    same_h = owner[:, None] == owner[None, :]
    return {
        "pair": faces,
        "merge": faces,
        "assign": (np.array(assign_same), np.array(assign_diff)),
        "associate": (hd[hu & same_h], hd[hu & ~same_h]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces-dev", type=Path, default=None)
    parser.add_argument("--embedders", nargs="+", choices=EMBEDDERS, default=list(EMBEDDERS))
    args = parser.parse_args()
    folder = faces_dev_folder(args.faces_dev)
    if folder is None:
        print("faces-dev not found (../shared/samples/faces-dev or --faces-dev): nothing to measure, skipped")
        return
    truth = truth_of(folder)
    images = cache_dir() / "weekly-grouping" / "images"
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    print("embedder  rule       FMR     measured  TMR there  | table  FMR there  TMR there  (same / different pairs)")
    for embedder in args.embedders:
        vectors, labels = central_faces(indexed_library(folder, embedder, args.embedders[0], images), truth)
        distances = measured(vectors, labels)
        for rule in RULES:
            same, different = distances[rule]
            at = float(np.quantile(different, FMR[rule]))
            table = face_distance(settings, MODEL[embedder], rule)
            print(
                f"{embedder:<9} {rule:<10} {FMR[rule]:<7g} {at:<9.3f} {np.mean(same <= at):<10.1%} | "
                f"{table:<6.3f} {np.mean(different <= table):<10.2%} {np.mean(same <= table):<10.1%} "
                f"({len(same)} / {len(different)})",
                flush=True,
            )


if __name__ == "__main__":
    main()
