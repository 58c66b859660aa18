"""Alignment maths, and a real face aligned to the ArcFace template (landmarks from YuNet)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from photodb.ml.alignment import ARCFACE_TEMPLATE, align_arcface, order_landmarks, pad_embedding, similarity_transform
from photodb.ml.face_detection import find_landmarks, yunet_faces

FACES = Path(__file__).resolve().parents[2] / "examples" / "photos" / "faces"


def face_photo(name: str) -> np.ndarray:
    image = cv2.imread(str(FACES / name))
    assert image is not None
    return image


def test_similarity_transform_recovers_rotation_scale_and_shift():
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE * 0.5 @ rotation.T + [300, 120]
    matrix = similarity_transform(src, ARCFACE_TEMPLATE)
    mapped = src @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - ARCFACE_TEMPLATE).max() < 1e-6


def test_landmark_order_does_not_depend_on_the_detectors_left_right_convention():
    mirrored = ARCFACE_TEMPLATE[[1, 0, 2, 4, 3]]
    assert np.allclose(order_landmarks(mirrored), ARCFACE_TEMPLATE)


def test_a_real_face_aligned_to_the_template_has_its_eyes_where_arcface_expects_them():
    image = face_photo("face_recognition/obama.jpg")
    (face,) = yunet_faces(image, 0.8)
    landmarks = find_landmarks(image, face)  # YuNet on the face crop, as for YOLO face boxes
    assert landmarks is not None
    chip = align_arcface(image, landmarks)
    assert chip.shape == (112, 112, 3)
    big = cv2.resize(chip, (448, 448), interpolation=cv2.INTER_CUBIC)  # YuNet wants more pixels
    (again,) = [f for f in yunet_faces(big, 0.5) if f.landmarks]
    assert again.landmarks is not None
    found = order_landmarks(np.array(again.landmarks) / 4)
    assert np.abs(found[:2] - ARCFACE_TEMPLATE[:2]).max() < 6  # both eyes within a few pixels


def test_padding_keeps_cosine_distances():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(128), rng.standard_normal(128)
    pa, pb = pad_embedding(a), pad_embedding(b)
    assert pa.shape == (512,) and not pa[128:].any()
    cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert pa @ pb / np.linalg.norm(pa) / np.linalg.norm(pb) == pytest.approx(cos, abs=1e-6)
    with pytest.raises(ValueError):
        pad_embedding(np.ones(513))
