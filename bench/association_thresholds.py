"""Cluster-centroid distances of the labelled sample faces under each packaged embedder: the
figures behind PERSON_ASSOCIATION_THRESHOLDS (photodb.config).

    .venv/bin/python bench/association_thresholds.py

Faces: examples/photos/faces (Obama twice, Biden, Grace Hopper twice, three different women of one
group photo) and tests/data/astronaut.jpg (Eileen Collins), found by YuNet. A "cluster" of a photo
is the centroid of the face and of two small variations of it (mirrored; 8 % tighter crop, which
moves the landmarks and the resampling), as a stand-in for a cluster of a few shots; a
single-face cluster is the face alone. Prints, per model, the cosine distances between centroids
of the same person (two different photos) and the nearest two different people get.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from photodb.ml.face_detection import yunet_faces  # noqa: E402
from photodb.ml.face_embedding import DlibEmbedder, FaceEmbedder, MobileFaceNetEmbedder, SFaceEmbedder  # noqa: E402

FACES = ROOT / "examples" / "photos" / "faces"
#: (label, file): one face per file except the group photo, whose three faces are three people.
PHOTOS = [
    ("obama", FACES / "face_recognition/obama.jpg"),
    ("obama", FACES / "face_recognition/obama2.jpg"),
    ("biden", FACES / "face_recognition/biden.jpg"),
    ("grace_hopper", FACES / "matplotlib/grace_hopper.jpg"),
    ("grace_hopper", FACES / "pillow/hopper.jpg"),
    ("group", FACES / "vladmandic_face_api/sample1.jpg"),
    ("eileen_collins", ROOT / "tests/data/astronaut.jpg"),
]


def variants(image: np.ndarray) -> list[np.ndarray]:
    height, width = image.shape[:2]
    dy, dx = int(height * 0.04), int(width * 0.04)
    return [image, cv2.flip(image, 1), np.ascontiguousarray(image[dy : height - dy, dx : width - dx])]


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def centroids(embedder: FaceEmbedder) -> tuple[list[str], list[np.ndarray], list[np.ndarray], list[str]]:
    """Per face: its label, its own embedding, its three-variant centroid, and its photo."""
    labels, singles, clusters, photos = [], [], [], []
    for label, path in PHOTOS:
        image = cv2.imread(str(path))
        assert image is not None, path
        per_variant = []
        for mirrored, variant in zip((False, True, False), variants(image), strict=True):
            faces = sorted(yunet_faces(variant, 0.8), key=lambda f: -f.width * f.height)
            faces = faces[:3] if label == "group" else faces[:1]
            faces.sort(key=lambda f: -f.x if mirrored else f.x)  # the same order of people in each variant
            chips = [embedder.prepare(variant, face).chip for face in faces]
            per_variant.append(embedder.embed_batch(chips))
        count = min(len(v) for v in per_variant)
        for index in range(count):
            labels.append(f"{label}{index + 1}" if label == "group" else label)
            singles.append(per_variant[0][index])
            clusters.append(unit(np.mean([v[index] for v in per_variant], axis=0)))
            photos.append(path.name)
    return labels, singles, clusters, photos


def report(embedder: FaceEmbedder) -> None:
    labels, singles, clusters, photos = centroids(embedder)
    print(f"\n{embedder.model_name}: {len(labels)} faces")
    for name, vectors in (("single faces", singles), ("3-variant centroids", clusters)):
        same, different = [], []
        for i, j in itertools.combinations(range(len(labels)), 2):
            distance = float(1 - vectors[i] @ vectors[j])
            if labels[i] == labels[j] and photos[i] != photos[j]:
                same.append((distance, labels[i]))
            elif labels[i] != labels[j]:
                different.append((distance, f"{labels[i]}~{labels[j]}"))
        different.sort()
        print(f"  {name}: same person {', '.join(f'{label} {d:.3f}' for d, label in same)}")
        print(f"  {name}: nearest different people {', '.join(f'{pair} {d:.3f}' for d, pair in different[:4])}")


def main() -> None:
    for embedder in (MobileFaceNetEmbedder(force_cpu=True), SFaceEmbedder(), DlibEmbedder()):
        report(embedder)


if __name__ == "__main__":
    main()
