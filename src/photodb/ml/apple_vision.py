"""Apple Vision's scene taxonomy (VNClassifyImageRequest, ~1300 labels) on macOS, through pyobjc.

Elsewhere, or without pyobjc's Vision bindings, the classifier is unavailable and says why in one
line (`unavailable_reason()`), which the stage reports once per run rather than once per photo.

Loading order (the design's "macOS Native Library Ordering"): Vision brings up CoreML and Metal,
which must happen after PyTorch has initialised MPS, so nothing here is imported at module level:
`load()` imports the frameworks, and the stage calls it after the CLIP model is loaded. Each
request runs inside `objc.autorelease_pool()`, so the Objective-C objects it creates are released
when it ends, on whichever worker thread ran it; a handler and a request are made per image and
never shared between threads.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photodb.ml.base import LazyModel, ModelUnavailable

MODEL_NAME = "apple_vision:classify"
VISION_PACKAGE = "pyobjc-framework-Vision"
DEFAULT_TOP_K = 10
DEFAULT_MIN_CONFIDENCE = 0.1


@dataclass(frozen=True)
class VisionLabel:
    """One taxonomy label (e.g. "outdoor", "beach") with Vision's confidence in [0, 1]."""

    identifier: str
    confidence: float


def top_labels(
    observations: Iterable[tuple[str, float]],
    *,
    top_k: int = DEFAULT_TOP_K,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> list[VisionLabel]:
    """The `top_k` most confident labels at or above `min_confidence`, most confident first.

    Vision scores every label of its taxonomy for each image, most of them near zero; ties are
    broken by name so that the result is the same on every run.
    """
    if top_k <= 0:
        return []
    kept = [VisionLabel(str(name), float(score)) for name, score in observations if float(score) >= min_confidence]
    kept.sort(key=lambda label: (-label.confidence, label.identifier))
    return kept[:top_k]


def _macos_version() -> tuple[int, ...]:
    release = platform.mac_ver()[0]
    return tuple(int(part) for part in release.split(".") if part.isdigit()) if release else ()


def unavailable_reason() -> str | None:
    """Why Apple Vision cannot run here, in one line; None when it can."""
    if sys.platform != "darwin":
        return f"Apple Vision classification needs macOS (this is {sys.platform})"
    version = _macos_version()
    if version and version < (10, 15):
        return f"Apple Vision classification needs macOS 10.15 or later (this is {'.'.join(map(str, version))})"
    import importlib.util

    if importlib.util.find_spec("Vision") is None or importlib.util.find_spec("objc") is None:
        return f"Apple Vision classification needs pyobjc's Vision bindings: pip install {VISION_PACKAGE}"
    return None


class AppleVisionClassifier(LazyModel):
    """Top-k labels of Apple's scene taxonomy for an image file, with confidences."""

    model_name = MODEL_NAME

    def __init__(self, *, top_k: int = DEFAULT_TOP_K, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> None:
        super().__init__()
        self.top_k = top_k
        self.min_confidence = min_confidence
        self._reason = unavailable_reason()
        self._objc: Any = None
        self._vision: Any = None
        self._foundation: Any = None

    def available(self) -> bool:
        return self._reason is None

    @property
    def reason(self) -> str | None:
        """Why it is unavailable (one line), or None."""
        return self._reason

    def _load(self) -> None:
        if self._reason is not None:
            raise ModelUnavailable(self._reason)
        import Foundation  # type: ignore[import-not-found]
        import objc  # type: ignore[import-not-found]
        import Vision  # type: ignore[import-not-found]

        self._objc, self._vision, self._foundation = objc, Vision, Foundation

    def classify(self, image: Path) -> list[VisionLabel]:
        """Vision's labels for one image file (any format ImageIO reads), best first."""
        self.load()
        with self._objc.autorelease_pool():
            url = self._foundation.NSURL.fileURLWithPath_(str(image))
            handler = self._vision.VNImageRequestHandler.alloc().initWithURL_options_(url, {})
            return self._perform(handler, str(image))

    def classify_bytes(self, encoded: bytes) -> list[VisionLabel]:
        """Vision's labels for one encoded image (PNG, JPEG, ...), best first."""
        self.load()
        with self._objc.autorelease_pool():
            data = self._foundation.NSData.dataWithBytes_length_(encoded, len(encoded))
            handler = self._vision.VNImageRequestHandler.alloc().initWithData_options_(data, {})
            return self._perform(handler, "an image")

    def _perform(self, handler: Any, what: str) -> list[VisionLabel]:
        request = self._vision.VNClassifyImageRequest.alloc().init()
        ok, error = handler.performRequests_error_([request], None)
        if not ok:
            raise RuntimeError(f"Apple Vision could not classify {what}: {error}")
        observations = [(str(o.identifier()), float(o.confidence())) for o in request.results() or ()]
        return top_labels(observations, top_k=self.top_k, min_confidence=self.min_confidence)

    def warm_up(self) -> None:
        """One request on a small grey image, so the first photo does not pay Vision's model load."""
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (128, 128, 128)).save(buffer, format="PNG")
        self.classify_bytes(buffer.getvalue())
