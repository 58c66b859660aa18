"""MiVOLO age and gender estimates from the user's `mivolo_d1.pth.tar` (MIVOLO_MODEL_PATH).

The checkpoint is a training checkpoint (a pickle with an argparse Namespace inside), so it is
opened only after its SHA-256 matched a pin (photodb.ml.files). Its weights load into
`photodb.ml.mivolo_model.MiVOLO` with strict key matching; its meta fields (min_age, max_age,
avg_age, no_gender) turn the network's outputs into years and a gender probability.

Pre-processing follows MiVOLO's own inference code so the network sees what it was trained on:

- the face crop is the face box; the body crop is the body box with every face box (its own
  person's too: the face reaches the network through the face input) and every other person's
  body box blacked out, other bodies widened to the crop's edge when they come within 30 % of it;
  rows and columns left mostly black are trimmed, and a body crop under 50 pixels a side or with
  under 40 % of it left is not used;
- each crop is letterboxed to the input size (aspect kept, black padding centred), scaled to 0..1
  and normalized with the ImageNet mean and std; a missing face or body is a black image
  normalized the same way.

All people of a photo go through the network in one batch. Inference holds the model's lock: the
spec runs MiVOLO serialized (one model instance shared by the stage's threads).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from photodb.ml.age_gender import AgeGenderEstimate, PersonBoxes
from photodb.ml.base import ML_EXTRA_HINT, LazyModel, ModelUnavailable, select_device
from photodb.ml.boxes import Box
from photodb.ml.files import file_sha256, load_torch_checkpoint

if TYPE_CHECKING:
    from photodb.config import Settings

log = logging.getLogger(__name__)

MODEL_SETTING = "MIVOLO_MODEL_PATH"
PIN_SETTING = "MIVOLO_MODEL_SHA256"

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float64)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float64)
#: MiVOLO drops body crops smaller than this many pixels on either side.
MIN_BODY_SIDE = 50
#: Another person's box that comes within this share of the body crop's edge is widened to it.
EDGE_SNAP_SHARE = 0.3
#: A row or column counts as blacked out when more than this share of the crop's height is black.
#: (MiVOLO measures rows against the height too; kept, since the network was trained on such crops.)
BLACK_LINE_SHARE = 1.0 - EDGE_SNAP_SHARE
#: A body crop with less than this share of its area left after trimming is not used.
MIN_BODY_REMAINING = 0.4
#: A patch grid side of the network's pos_embed covers this many input pixels.
PIXELS_PER_POS_EMBED = 16
WITH_PERSONS_KEY = "patch_embed.conv1.0.weight"


@dataclass(frozen=True)
class CheckpointMeta:
    """What a MiVOLO checkpoint says about its network and its age scale."""

    min_age: float
    max_age: float
    avg_age: float
    no_gender: bool
    with_persons: bool
    input_size: int

    def age(self, normalized: float) -> float:
        return normalized * (self.max_age - self.min_age) + self.avg_age


def _float_field(checkpoint: Mapping[str, Any], name: str) -> float:
    try:
        return float(checkpoint[name])
    except KeyError:
        raise ValueError(f"no {name!r}") from None
    except (TypeError, ValueError):
        raise ValueError(f"{name!r} is not a number") from None


def read_checkpoint(checkpoint: Any) -> tuple[dict[str, Any], CheckpointMeta]:
    """The weights (EMA when saved, `module.` stripped, FDS training keys dropped) and the meta.

    Raises ValueError saying what is wrong with a dict that is not a MiVOLO checkpoint."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"a {type(checkpoint).__name__}, not a checkpoint dict")
    weights = checkpoint.get("state_dict_ema") or checkpoint.get("state_dict")
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError("no 'state_dict'")
    state = {key.removeprefix("module."): value for key, value in weights.items() if "fds." not in key}
    pos_embed = state.get("pos_embed")
    if pos_embed is None or len(getattr(pos_embed, "shape", ())) != 4:
        raise ValueError("no 4-dimensional 'pos_embed'")
    meta = CheckpointMeta(
        min_age=_float_field(checkpoint, "min_age"),
        max_age=_float_field(checkpoint, "max_age"),
        avg_age=_float_field(checkpoint, "avg_age"),
        no_gender=bool(checkpoint.get("no_gender", False)),
        with_persons=WITH_PERSONS_KEY in state,
        input_size=int(pos_embed.shape[1]) * PIXELS_PER_POS_EMBED,
    )
    return state, meta


def _pixels(box: Box, width: int, height: int) -> tuple[int, int, int, int] | None:
    """A box as whole-pixel corners inside the image (truncated, as MiVOLO does); None when empty."""
    x1, y1 = int(max(box.x, 0.0)), int(max(box.y, 0.0))
    x2, y2 = int(min(box.x2, float(width))), int(min(box.y2, float(height)))
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def face_crop(image: np.ndarray, face: Box | None) -> np.ndarray | None:
    if face is None:
        return None
    corners = _pixels(face, image.shape[1], image.shape[0])
    if corners is None:
        return None
    x1, y1, x2, y2 = corners
    return image[y1:y2, x1:x2].copy()


def _trim_black_lines(crop: np.ndarray) -> np.ndarray:
    """Drop the leading and trailing rows and columns that are mostly blacked out."""
    black = ~crop.any(axis=2)
    limit = crop.shape[0] * BLACK_LINE_SHARE
    rows = np.flatnonzero(black.sum(axis=1) <= limit)
    cols = np.flatnonzero(black.sum(axis=0) <= limit)
    if rows.size:
        crop = crop[rows[0] : rows[-1] + 1]
    if cols.size:
        crop = crop[:, cols[0] : cols[-1] + 1]
    return crop


def body_crop(image: np.ndarray, person: PersonBoxes, people: Sequence[PersonBoxes]) -> np.ndarray | None:
    """`person`'s body crop with all faces and the other people's bodies blacked out; None when
    there is no body box or too little of it is usable."""
    if person.body is None:
        return None
    height, width = image.shape[:2]
    corners = _pixels(person.body, width, height)
    if corners is None:
        return None
    x1, y1, x2, y2 = corners
    crop = image[y1:y2, x1:x2].copy()
    crop_h, crop_w = crop.shape[:2]
    if crop_h < MIN_BODY_SIDE or crop_w < MIN_BODY_SIDE:
        return None
    others: list[tuple[Box, bool]] = [(p.face, False) for p in people if p.face is not None]
    others += [(p.body, True) for p in people if p.body is not None and p is not person]
    for box, is_body in others:
        other = _pixels(box, width, height)
        if other is None:
            continue
        ox1, oy1 = max(other[0] - x1, 0), max(other[1] - y1, 0)
        ox2, oy2 = min(other[2] - x1, crop_w), min(other[3] - y1, crop_h)
        if ox2 <= ox1 or oy2 <= oy1:
            continue  # no overlap with this body
        if is_body:
            ox1 = 0 if ox1 / crop_w < EDGE_SNAP_SHARE else ox1
            oy1 = 0 if oy1 / crop_h < EDGE_SNAP_SHARE else oy1
            ox2 = crop_w if (crop_w - ox2) / crop_w < EDGE_SNAP_SHARE else ox2
            oy2 = crop_h if (crop_h - oy2) / crop_h < EDGE_SNAP_SHARE else oy2
        crop[oy1:oy2, ox1:ox2] = 0
    trimmed = _trim_black_lines(crop)
    if trimmed.shape[0] * trimmed.shape[1] < MIN_BODY_REMAINING * crop_h * crop_w:
        return None
    return trimmed


def letterbox(crop: np.ndarray, size: int) -> np.ndarray:
    """`crop` scaled to fit a size x size square, aspect kept, centred on black."""
    height, width = crop.shape[:2]
    if (height, width) == (size, size):
        return crop
    import cv2

    scale = min(size / height, size / width)
    new_w, new_h = round(width * scale), round(height * scale)
    if (new_w, new_h) != (width, height):
        crop = cv2.resize(crop, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((size, size, crop.shape[2]), dtype=crop.dtype)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = crop
    return canvas


def network_input(crop: np.ndarray | None, size: int) -> np.ndarray:
    """An RGB uint8 crop (or None: a black image) as a normalized 3 x size x size float32 array."""
    pixels = np.zeros((size, size, 3), dtype=np.uint8) if crop is None else letterbox(crop, size)
    normalized = (pixels / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(normalized.transpose(2, 0, 1), dtype=np.float32)


class MiVOLOAgeGender(LazyModel):
    """MiVOLO-D1 (face + body, or face only) from a pinned checkpoint file."""

    model_name = "mivolo:d1"

    def __init__(self, path: Path, *, pin: str | None = None, force_cpu: bool = False) -> None:
        super().__init__()
        self.path = path
        self.pin = pin
        self.force_cpu = force_cpu
        self.device = "cpu"
        self.version = "unknown"
        self.meta: CheckpointMeta | None = None
        self._network: Any = None

    def _load(self) -> None:
        checkpoint = load_torch_checkpoint(self.path, setting=MODEL_SETTING, pin_setting=PIN_SETTING, user_pin=self.pin)
        try:
            state, meta = read_checkpoint(checkpoint)
        except ValueError as error:
            raise ModelUnavailable(f"{self.path} is not a MiVOLO checkpoint: {error}") from error
        network = _build_network(self.path, state, meta)
        self.device = select_device(self.force_cpu)
        self._network = network.to(self.device).eval()
        self.meta = meta
        self.version = f"sha256:{file_sha256(self.path)}"
        log.info("MiVOLO loaded from %s on %s (%s)", self.path, self.device, meta)

    def predict(self, image_rgb: np.ndarray, people: Sequence[PersonBoxes]) -> list[AgeGenderEstimate]:
        """One estimate per person, in order; a person with no usable crop gets age None."""
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise ValueError(f"MiVOLO takes an RGB uint8 image, not {image_rgb.dtype} {image_rgb.shape}")
        self.load()
        meta = self.meta
        assert meta is not None
        inputs: list[np.ndarray] = []
        used: list[tuple[int, bool, bool]] = []  # index into people, has face, has body
        for index, person in enumerate(people):
            face = face_crop(image_rgb, person.face)
            body = body_crop(image_rgb, person, people) if meta.with_persons else None
            if face is None and body is None:
                continue
            channels = [network_input(face, meta.input_size)]
            if meta.with_persons:
                channels.append(network_input(body, meta.input_size))
            inputs.append(np.concatenate(channels))
            used.append((index, face is not None, body is not None))
        outputs = self._forward(np.stack(inputs)) if inputs else np.zeros((0, 0), dtype=np.float32)
        estimates: list[AgeGenderEstimate] = [
            AgeGenderEstimate(
                p.detection_id, None, None, {"model": self.model_name, "skipped": "no face box and no usable body crop"}
            )
            for p in people
        ]
        for (index, has_face, has_body), output in zip(used, outputs, strict=True):
            estimates[index] = self._estimate(people[index].detection_id, output, has_face, has_body)
        return estimates

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with self._lock, torch.inference_mode():
            output = self._network(torch.from_numpy(batch).to(self.device))
            return output.float().cpu().numpy()

    def _estimate(self, detection_id: int, output: np.ndarray, has_face: bool, has_body: bool) -> AgeGenderEstimate:
        meta = self.meta
        assert meta is not None
        logits = [float(v) for v in output]
        male: float | None = None
        if meta.no_gender:
            age = meta.age(logits[0])
        else:
            age = meta.age(logits[2])
            shifted = np.exp(np.array(logits[:2]) - max(logits[:2]))
            male = float(shifted[0] / shifted.sum())
        raw = {
            "model": self.model_name,
            "output": logits,
            "age": age,
            "male_probability": male,
            "inputs": {"face": has_face, "body": has_body},
            "checkpoint": {"version": self.version, **asdict(meta)},
        }
        return AgeGenderEstimate(detection_id, age, male, raw)


def _build_network(path: Path, state: dict[str, Any], meta: CheckpointMeta) -> Any:
    """The network for `meta`, with `state` loaded strictly; a mismatch says which keys differ."""
    try:
        from photodb.ml.mivolo_model import MiVOLO
    except ImportError as error:  # timm (or torch) missing
        raise ModelUnavailable(f"MiVOLO needs {error.name}: {ML_EXTRA_HINT}") from error
    try:
        network = MiVOLO(
            img_size=meta.input_size, in_chans=6 if meta.with_persons else 3, num_classes=1 if meta.no_gender else 3
        )
    except ValueError as error:
        raise ModelUnavailable(f"{path} is not a MiVOLO-D1 checkpoint: {error}") from error
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    resized = sorted(
        k for k in set(expected) & set(state) if tuple(getattr(state[k], "shape", ())) != tuple(expected[k].shape)
    )
    problems = [
        f"{what} {len(keys)} key(s) ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape for", resized))
        if keys
    ]
    if problems:
        raise ModelUnavailable(f"{path} does not fit the MiVOLO-D1 network: " + "; ".join(problems))
    network.load_state_dict(state, strict=True)
    return network


def create_mivolo(settings: Settings) -> MiVOLOAgeGender:
    """MiVOLO as the settings place it: MIVOLO_MODEL_PATH (or MODELS_DIR), its pin, MIVOLO_FORCE_CPU."""
    return MiVOLOAgeGender(
        settings.mivolo_model_file, pin=settings.mivolo_model_sha256, force_cpu=settings.mivolo_force_cpu
    )
