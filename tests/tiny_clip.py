"""CLIP weights made at test time, loaded by the real `ClipModel` (no download ever happens).

Two models, each built once per test session and shared by every test module that asks:

- `random_mobileclip` (fixture `mobileclip_random`): the real MobileCLIP-S2 architecture with
  random weights, saved as safetensors under its own MODELS_DIR with the default file name, the
  way a user's download sits. It exercises loading, preprocessing and batching at full size; its
  embeddings mean nothing.
- `tiny_clip` (fixture `tiny_clip`): a tiny CLIP-style model (open_clip config `TinyCLIP-shapes`,
  ~2 M parameters, 512-d embeddings, model_name "openclip:TinyCLIP-shapes", the real open_clip
  tokenizer) trained on one CPU thread (about 20 s of CPU) on generated images of coloured shapes
  captioned "a red circle", "a blue square", ... . It gives known right answers: zero-shot
  classification over `CAPTIONS` and text -> image ranking (`draw_shape` makes more images).

How a test uses them (the scene stage's tests do the same): take the fixture, then build settings
with its overrides, or pass its environment to a subprocess (`process-local`):

    from tests.tiny_clip import tiny_clip  # noqa: F401  (the fixture; trains once per session)

    def test_tags(tiny_clip, tmp_path):
        settings = Settings(_env_file=None, photodb_home=tmp_path, **tiny_clip.settings_overrides())
        model = create_clip_model(settings)            # the real ClipModel
        image = draw_shape("red", "circle", np.random.default_rng(0))
        ...                                            # "a red circle" ranks first

    env = os.environ | tiny_clip.environment()        # CLIP_MODEL_NAME/_PATH/_SHA256/_CONFIG

CLIP_MODEL_CONFIG points at the tiny architecture's JSON, which is how a subprocess finds it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image, ImageDraw

from photodb.ml.files import file_sha256

if TYPE_CHECKING:
    import torch

TINY_ARCHITECTURE = "TinyCLIP-shapes"
COLOURS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220)}
SHAPES = ("circle", "square", "triangle")
CLASSES = [(colour, shape) for colour in COLOURS for shape in SHAPES]
CAPTIONS = [f"a {colour} {shape}" for colour, shape in CLASSES]
#: Extra caption forms seen in training, so the text tower reads the words rather than one string.
TRAINING_TEMPLATES = ("a {colour} {shape}", "a photo of a {colour} {shape}", "{colour} {shape}")

#: A small ResNet image tower (open_clip's ModifiedResNet) on 48x48 inputs and a one-layer text
#: transformer over a 12-token context (enough for every caption above, tokenized by open_clip's
#: BPE tokenizer), embedding into 512 dimensions like MobileCLIP-S2 so that its vectors fit the
#: same columns. Measured: 99-100 % zero-shot accuracy on held-out images after 200-300 steps.
TINY_CONFIG = {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 48, "layers": [1, 1, 1, 1], "width": 8, "head_width": 32},
    "text_cfg": {"context_length": 12, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TRAINING_IMAGES = 1500
TRAIN_STEPS = 300
BATCH = 48
LEARNING_RATE = 3e-3
SEED = 0


@dataclass(frozen=True)
class ClipFiles:
    """A weights file with what the settings need to load it."""

    architecture: str
    weights: Path
    sha256: str
    config: Path | None = None

    def settings_overrides(self) -> dict[str, object]:
        """Keyword arguments for `Settings(...)`."""
        return {
            "clip_model_name": self.architecture,
            "clip_model_path": self.weights,
            "clip_model_sha256": self.sha256,
            "clip_model_config": self.config,
        }

    def environment(self) -> dict[str, str]:
        """The same settings as environment variables, for a subprocess."""
        env = {
            "CLIP_MODEL_NAME": self.architecture,
            "CLIP_MODEL_PATH": str(self.weights),
            "CLIP_MODEL_SHA256": self.sha256,
        }
        if self.config is not None:
            env["CLIP_MODEL_CONFIG"] = str(self.config)
        return env


_built: dict[str, ClipFiles] = {}
_building = threading.Lock()


def _once(key: str, factory: pytest.TempPathFactory, build: Callable[[Path], ClipFiles]) -> ClipFiles:
    """Build each model once per session, whichever module's fixture asks first."""
    with _building:
        if key not in _built:
            _built[key] = build(factory.mktemp(key))
        return _built[key]


def _save_safetensors(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, str(path))


def make_random_mobileclip(models_dir: Path, seed: int = SEED) -> ClipFiles:
    """MobileCLIP-S2 with random weights at MODELS_DIR/mobileclip_s2.safetensors (the default path)."""
    import open_clip
    import torch

    torch.manual_seed(seed)
    model = open_clip.create_model("MobileCLIP-S2", pretrained=None, pretrained_image=False, pretrained_text=False)
    weights = models_dir / "mobileclip_s2.safetensors"
    _save_safetensors(model, weights)
    return ClipFiles("MobileCLIP-S2", weights, file_sha256(weights))


def draw_shape(colour: str, shape: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """One coloured shape, of random size and place, on a random greyish background with noise."""
    grey = rng.integers(60, 200)
    tint = rng.integers(-25, 26, size=3)
    background = np.clip(grey + tint, 0, 255)
    pixels = np.clip(background + rng.normal(0, 8, (size, size, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    side = int(rng.integers(size * 2 // 5, size * 4 // 5))
    left = int(rng.integers(0, size - side + 1))
    top = int(rng.integers(0, size - side + 1))
    fill = tuple(int(c) for c in np.clip(np.array(COLOURS[colour]) + rng.integers(-20, 21, size=3), 0, 255))
    if shape == "circle":
        draw.ellipse((left, top, left + side, top + side), fill=fill)
    elif shape == "square":
        inset = side // 8
        draw.rectangle((left + inset, top + inset, left + side - inset, top + side - inset), fill=fill)
    else:
        draw.polygon([(left + side / 2, top), (left, top + side), (left + side, top + side)], fill=fill)
    return image


def _train_tiny(directory: Path, seed: int = SEED) -> ClipFiles:
    """Train TinyCLIP-shapes contrastively on generated captioned images; save it as safetensors."""
    import open_clip
    import torch
    import torch.nn.functional as F
    from open_clip.transform import PreprocessCfg, image_transform_v2

    config = directory / f"{TINY_ARCHITECTURE}.json"
    config.write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
    open_clip.add_model_config(config)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = open_clip.create_model(
            TINY_ARCHITECTURE, pretrained=None, pretrained_image=False, pretrained_text=False
        )
        preprocess_cfg = PreprocessCfg(**open_clip.get_model_preprocess_cfg(model))
        transform = image_transform_v2(preprocess_cfg, is_train=False)
        tokenizer = open_clip.get_tokenizer(TINY_ARCHITECTURE)
        texts = {
            template: tokenizer([template.format(colour=c, shape=s) for c, s in CLASSES])
            for template in TRAINING_TEMPLATES
        }
        labels = torch.as_tensor(rng.integers(0, len(CLASSES), TRAINING_IMAGES))
        images = torch.stack([transform(draw_shape(*CLASSES[label], rng)) for label in labels.tolist()])
        optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, LEARNING_RATE, total_steps=TRAIN_STEPS, pct_start=0.15
        )
        model.train()
        for step in range(TRAIN_STEPS):
            chosen = torch.as_tensor(rng.integers(0, TRAINING_IMAGES, BATCH))
            targets = labels[chosen]
            image_features = model.encode_image(images[chosen], normalize=True)
            text_features = model.encode_text(texts[TRAINING_TEMPLATES[step % len(TRAINING_TEMPLATES)]], normalize=True)
            logits = model.logit_scale.exp() * image_features @ text_features.T
            # Each image against every caption, and each caption present against the images showing it.
            present = torch.unique(targets)
            shown = (targets[None, :] == present[:, None]).float()
            text_loss = -(shown * logits.T[present].log_softmax(dim=1)).sum(1).div(shown.sum(1)).mean()
            loss = (F.cross_entropy(logits, targets) + text_loss) / 2
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    weights = directory / "tiny_clip_shapes.safetensors"
    _save_safetensors(model, weights)
    return ClipFiles(TINY_ARCHITECTURE, weights, file_sha256(weights), config)


def random_mobileclip(factory: pytest.TempPathFactory) -> ClipFiles:
    return _once("mobileclip_random", factory, make_random_mobileclip)


def trained_tiny_clip(factory: pytest.TempPathFactory) -> ClipFiles:
    return _once("tiny_clip", factory, _train_tiny)


@pytest.fixture(scope="session")
def mobileclip_random(tmp_path_factory: pytest.TempPathFactory) -> ClipFiles:
    return random_mobileclip(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> ClipFiles:
    return trained_tiny_clip(tmp_path_factory)
