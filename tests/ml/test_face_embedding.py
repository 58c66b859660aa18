"""Alignment maths, the ArcFace ONNX path (real pre-processing on a stand-in graph) and dlib."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from detection_models import make_arcface_onnx
from photodb.utils.embedding_extractor import (
    ARCFACE_TEMPLATE,
    ArcFaceEmbedder,
    DlibEmbedder,
    align_arcface,
    find_landmarks,
    order_landmarks,
    pad_embedding,
    similarity_transform,
)
from photodb.utils.person_detector import Box, ModelUnavailable, yunet_faces
from tests.conftest import SAMPLES


def face_photo(name: str) -> np.ndarray:
    image = cv2.imread(str(SAMPLES / "faces" / name))
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


@pytest.mark.parametrize("fixed_batch", [True, False], ids=["batch1", "dynamic"])
def test_arcface_onnx_embeds_aligned_faces_into_unit_vectors(tmp_path: Path, fixed_batch: bool):
    embedder = ArcFaceEmbedder(make_arcface_onnx(tmp_path / "w600k_r50.onnx", fixed_batch=fixed_batch))
    embedder.load()
    assert embedder.model_name == "arcface:w600k_r50" and embedder.dim == 512
    faces = []
    for name in ("face_recognition/obama.jpg", "face_recognition/biden.jpg"):
        image = face_photo(name)
        (face,) = yunet_faces(image, 0.8)
        # A box without landmarks, as the YOLO detector gives: landmarks come from YuNet on the crop.
        faces.append(embedder.prepare(image, Box(face.x, face.y, face.width, face.height, 0.9)))
    assert all(f.aligned and f.chip.shape == (112, 112, 3) for f in faces)
    vectors = embedder.embed_batch([f.chip for f in faces])
    assert vectors.shape == (2, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    assert np.allclose(embedder.embed_batch([faces[0].chip])[0], vectors[0], atol=1e-5)


def test_arcface_falls_back_to_an_unaligned_crop_when_no_landmarks_are_found(tmp_path: Path):
    embedder = ArcFaceEmbedder(make_arcface_onnx(tmp_path / "w600k_r50.onnx"))
    flat = np.full((200, 200, 3), 128, dtype=np.uint8)
    prepared = embedder.prepare(flat, Box(50, 50, 80, 80, 0.9))
    assert not prepared.aligned and prepared.chip.shape == (112, 112, 3)


def test_arcface_model_errors_name_the_file(tmp_path: Path):
    with pytest.raises(ModelUnavailable, match=r"ArcFace model not found: .*download_models\.sh"):
        ArcFaceEmbedder(tmp_path / "missing.onnx").load()
    corrupt = tmp_path / "w600k_r50.onnx"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(ModelUnavailable, match="cannot load ArcFace model"):
        ArcFaceEmbedder(corrupt).load()


def test_a_model_with_the_wrong_input_shape_is_refused(tmp_path: Path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "wrong",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 224, 224])],
    )
    path = tmp_path / "wrong.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    with pytest.raises(ModelUnavailable, match="Nx3x112x112"):
        ArcFaceEmbedder(path).load()


def test_dlib_embeddings_put_the_same_person_closer_than_different_people():
    embedder = DlibEmbedder()
    chips = {}
    for name in ("face_recognition/obama.jpg", "face_recognition/obama2.jpg", "face_recognition/biden.jpg"):
        image = face_photo(name)
        (face,) = yunet_faces(image, 0.8)
        prepared = embedder.prepare(image, face)
        assert prepared.aligned and prepared.chip.shape == (150, 150, 3)
        chips[name.split("/")[1]] = prepared.chip
    obama, obama2, biden = embedder.embed_batch(list(chips.values()))
    assert obama @ obama2 > obama @ biden + 0.05
    assert obama @ obama2 > obama2 @ biden + 0.05


def test_padding_keeps_cosine_distances():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(128), rng.standard_normal(128)
    pa, pb = pad_embedding(a), pad_embedding(b)
    assert pa.shape == (512,) and not pa[128:].any()
    cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert pa @ pb / np.linalg.norm(pa) / np.linalg.norm(pb) == pytest.approx(cos, abs=1e-6)
    with pytest.raises(ValueError):
        pad_embedding(np.ones(513))
