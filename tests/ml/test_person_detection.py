"""Backend choice, the YOLO and offline detectors on real files, and their loading errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from photodb.config import Settings
from photodb.ml.base import ModelUnavailable, missing_ml_modules
from photodb.ml.boxes import match_faces_to_bodies
from photodb.ml.files import file_sha256
from photodb.ml.person_detection import OfflineDetector, YoloPersonFaceDetector, resolve_backend
from tests.detection_models import make_random_yolo

FACES = Path(__file__).resolve().parents[2] / "examples" / "photos" / "faces"


def test_the_ml_extra_is_installed_here():
    assert missing_ml_modules() == []


def test_auto_backend_uses_yolo_only_when_its_files_exist(tmp_path: Path):
    yolo, arcface = tmp_path / "yolo.pt", tmp_path / "w600k_r50.onnx"
    settings = Settings(_env_file=None, detection_model_path=yolo, arcface_model_path=arcface)  # type: ignore[call-arg]
    assert resolve_backend(settings) == "offline"
    yolo.write_bytes(b"x")
    assert resolve_backend(settings) == "offline"
    # A packaged embedder chosen explicitly does not need the ArcFace file.
    assert resolve_backend(settings.model_copy(update={"face_embedder": "sface"})) == "yolo"
    arcface.write_bytes(b"x")
    assert resolve_backend(settings) == "yolo"
    forced = settings.model_copy(update={"detection_backend": "offline"})
    assert resolve_backend(forced) == "offline"


def test_auto_backend_finds_the_models_under_models_dir_from_any_directory(tmp_path: Path, monkeypatch):
    """Default paths hang off MODELS_DIR (default PHOTODB_HOME/models), never off the current directory."""
    home = tmp_path / "home"
    (home / "models" / "buffalo_l").mkdir(parents=True)
    (home / "models" / "yolov8x_person_face.pt").write_bytes(b"x")
    (home / "models" / "buffalo_l" / "w600k_r50.onnx").write_bytes(b"x")
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("PHOTODB_HOME", str(home))
    monkeypatch.delenv("MODELS_DIR", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.detection_model_file == home / "models" / "yolov8x_person_face.pt"
    assert resolve_backend(settings) == "yolo"
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "empty"))
    assert resolve_backend(Settings(_env_file=None)) == "offline"  # type: ignore[call-arg]


def test_missing_yolo_model_names_the_path_and_the_script(tmp_path: Path):
    detector = YoloPersonFaceDetector(tmp_path / "nope.pt", min_confidence=0.5)
    with pytest.raises(ModelUnavailable) as info:
        detector.load()
    message = str(info.value)
    assert str(tmp_path / "nope.pt") in message and "scripts/download_models.sh" in message


def test_corrupt_yolo_model_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "my_person_face.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelUnavailable, match="cannot load YOLO person_face model"):
        YoloPersonFaceDetector(path, min_confidence=0.5, pin=file_sha256(path)).load()


def test_a_yolo_model_without_face_and_person_classes_is_refused(tmp_path: Path):
    path = make_random_yolo(tmp_path / "coco.pt", names=("car", "dog"))
    with pytest.raises(ModelUnavailable, match="'face' and 'person' classes"):
        YoloPersonFaceDetector(path, min_confidence=0.5, pin=file_sha256(path)).load()


def test_an_unpinned_or_mismatched_yolo_checkpoint_is_never_unpickled(tmp_path: Path, monkeypatch):
    """A .pt is a pickle: without a matching pin, ultralytics/torch must not even open it."""
    import torch

    opened: list[object] = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: opened.append(a) or real_load(*a, **k))
    path = make_random_yolo(tmp_path / "person_face.pt")
    with pytest.raises(ModelUnavailable, match=r"no pinned checksum: if you trust it, set DETECTION_MODEL_SHA256="):
        YoloPersonFaceDetector(path, min_confidence=0.5).load()
    with pytest.raises(ModelUnavailable, match=r"not 0{64} \(DETECTION_MODEL_SHA256\)"):
        YoloPersonFaceDetector(path, min_confidence=0.5, pin="0" * 64).load()
    # The spec's file name carries the published pin: a different file under that name is refused.
    spec_named = make_random_yolo(tmp_path / "yolov8x_person_face.pt")
    with pytest.raises(ModelUnavailable, match=r"photodb/ml/model_files\.json"):
        YoloPersonFaceDetector(spec_named, min_confidence=0.5).load()
    assert opened == []


def test_random_yolo_loads_predicts_and_parses_boxes_of_both_classes(tmp_path: Path):
    path = make_random_yolo(tmp_path / "person_face.pt")
    detector = YoloPersonFaceDetector(path, min_confidence=0.5, force_cpu=True, pin=file_sha256(path))
    image = cv2.imread(str(FACES / "pillow" / "hopper.jpg"))
    first, second = detector.detect_batch([image, image])
    assert detector.version.startswith("sha256:") and detector.device == "cpu"
    assert first.faces and first.bodies
    assert first == second  # batched images are parsed independently and identically
    for b in first.faces + first.bodies:
        assert 0.5 <= b.confidence <= 1 and b.width > 0 and b.height > 0 and b.landmarks is None


def test_offline_detector_finds_the_faces_and_people_of_a_group_photo():
    detector = OfflineDetector(min_confidence=0.5, face_min_confidence=0.8, force_cpu=True)
    image = cv2.imread(str(FACES / "vladmandic_face_api" / "sample1.jpg"))
    found = detector.detect(image)
    assert len(found.faces) == 3
    assert len(found.bodies) == 3
    assert all(face.landmarks is not None and len(face.landmarks) == 5 for face in found.faces)
    pairs = match_faces_to_bodies(found.faces, found.bodies)
    assert sum(1 for f, b in pairs if f is not None and b is not None) == 3


def test_importing_ultralytics_does_not_change_how_bad_files_fail(tmp_path):
    """ultralytics patches PIL.Image.open to pip-install pi-heif on unidentified files."""
    from photodb.ml.person_detection import quiet_ultralytics
    from photodb.utils.image import ImageError, load_image

    quiet_ultralytics()
    import ultralytics  # noqa: F401 - the import applies the patch

    fake = tmp_path / "fake.jpg"
    fake.write_text("only words in here")
    with pytest.raises(ImageError, match="not a recognised image format"):
        load_image(fake, 179_000_000)
