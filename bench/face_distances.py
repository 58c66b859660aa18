"""The figures behind the face distance table (photodb.clustering.distances), measured the same
way for every packaged embedder on labelled faces (faces-dev, as bench/weekly_grouping.py finds
it; skipped with a message when absent). No database: each photo is read, its faces found and
embedded with the detection stage's own functions.

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

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from weekly_grouping import EMBEDDERS, faces_dev_folder, truth_of

from photodb.clustering.distances import RULES, face_distance
from photodb.config import Settings
from photodb.ml.face_detection import yunet_faces
from photodb.ml.face_embedding import DlibEmbedder, FaceEmbedder, MobileFaceNetEmbedder, SFaceEmbedder

MAKERS = {"mbf": lambda: MobileFaceNetEmbedder(force_cpu=True), "sface": SFaceEmbedder, "dlib": DlibEmbedder}
FMR = {"pair": 1e-4, "merge": 1e-3, "assign": 1e-3, "associate": 1e-3}


def central_faces(folder: Path, embedder: FaceEmbedder) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The face nearest the centre of each labelled photo, found and embedded as the detection
    stage does (YuNet boxes and landmarks, the embedder's own alignment)."""
    vectors, labels = [], []
    for path, label in sorted(truth_of(folder).items()):
        image = cv2.imread(str(folder / path))
        if image is None:
            continue
        height, width = image.shape[:2]
        faces = yunet_faces(image, 0.8)
        if not faces:
            continue
        face = min(faces, key=lambda f: abs(f.x + f.width / 2 - width / 2) + abs(f.y + f.height / 2 - height / 2))
        vectors.append(embedder.embed_batch([embedder.prepare(image, face).chip])[0])
        labels.append(label)
    return unit(np.vstack(vectors).astype(np.float64)), labels


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
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    print("embedder  rule       FMR     measured  TMR there  | table  FMR there  TMR there  (same / different pairs)")
    for embedder in args.embedders:
        model = MAKERS[embedder]()
        vectors, labels = central_faces(folder, model)
        distances = measured(vectors, labels)
        for rule in RULES:
            same, different = distances[rule]
            at = float(np.quantile(different, FMR[rule]))
            table = face_distance(settings, model.model_name, rule)
            print(
                f"{embedder:<9} {rule:<10} {FMR[rule]:<7g} {at:<9.3f} {np.mean(same <= at):<10.1%} | "
                f"{table:<6.3f} {np.mean(different <= table):<10.2%} {np.mean(same <= table):<10.1%} "
                f"({len(same)} / {len(different)})",
                flush=True,
            )


if __name__ == "__main__":
    main()
