"""CLIP image and text embeddings (MobileCLIP-S2 by default) through open_clip, from a local file only.

The scene analysis stage embeds photos and face crops with the image tower and its prompts with
the text tower; both land in one space, so cosine similarity ranks prompts for a photo and photos
for a text query.

Where the weights come from: CLIP_MODEL_PATH (default MODELS_DIR/mobileclip_s2.safetensors, which
scripts/download_models.sh fetches from apple/MobileCLIP-S2-OpenCLIP). The file is checked by
`verify_model_file` first, and only a safetensors file (plain tensors, no code) is accepted:
open_clip is never asked for a tag or a hub name, so nothing is downloaded, and timm's towers are
built with `pretrained=False`. CLIP_MODEL_NAME names the open_clip architecture of the file
(`open_clip.list_models()`); CLIP_MODEL_CONFIG adds an architecture from an open_clip config JSON.

Preprocessing is open_clip's inference transform with the published normalisation of the
architecture's first pretrained tag (MobileCLIP: bilinear, shortest side, no mean/std), so a user's
file is fed as it was trained. The tokenizer is open_clip's own (the BPE vocabulary ships with it).
MobileCLIP's vision tower is re-parameterised after loading (timm's fused inference form: the same
outputs, about twice as fast on CPU).

Thread safety: `load()` runs once under the model's lock. Inference runs in `torch.inference_mode`
on an eval-mode model, which reads and never writes the module's state, so threads may call the
encoders at once on CPU and CUDA; on Apple MPS calls are serialised with the lock (Metal command
queues are not safe to share across threads).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from photodb.ml.base import ML_EXTRA_HINT, LazyModel, ModelUnavailable, select_device
from photodb.ml.files import verify_model_file

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from PIL import Image

    from photodb.config import Settings

log = logging.getLogger(__name__)

CLIP_SETTING = "CLIP_MODEL_PATH"
CLIP_PIN_SETTING = "CLIP_MODEL_SHA256"
CLIP_NAME_SETTING = "CLIP_MODEL_NAME"
#: The only weights format loaded: a pickle checkpoint could run code when opened.
WEIGHTS_SUFFIX = ".safetensors"


def clip_model_name(architecture: str) -> str:
    """The name stored with every embedding: "mobileclip:s2" for MobileCLIP-S2, "openclip:<arch>" else."""
    family, _, variant = architecture.lower().partition("-")
    if family.startswith("mobileclip") and variant:
        return f"{family}:{variant}"
    return f"openclip:{architecture}"


def _import_open_clip() -> Any:
    try:
        import open_clip
    except ImportError as error:
        raise ModelUnavailable(f"open_clip is not installed: {ML_EXTRA_HINT}") from error
    return open_clip


def _architecture_config(open_clip: Any, architecture: str, config_file: Path | None) -> dict[str, Any]:
    """The open_clip config of `architecture`, refusing those whose text side needs the Hugging Face hub."""
    if config_file is not None:
        if not config_file.is_file():
            raise ModelUnavailable(f"CLIP_MODEL_CONFIG {config_file} does not exist")
        if config_file.stem != architecture:
            raise ModelUnavailable(
                f"CLIP_MODEL_CONFIG {config_file} defines architecture {config_file.stem}: "
                f"set {CLIP_NAME_SETTING}={config_file.stem}"
            )
        open_clip.add_model_config(config_file)
    config = open_clip.get_model_config(architecture)
    if config is None:
        raise ModelUnavailable(
            f"{CLIP_NAME_SETTING}={architecture} is not an open_clip architecture "
            f"(see open_clip.list_models(), or add one with CLIP_MODEL_CONFIG)"
        )
    text = config.get("text_cfg", {})
    if text.get("hf_model_name") or text.get("hf_tokenizer_name") or "siglip" in architecture.lower():
        raise ModelUnavailable(
            f"{CLIP_NAME_SETTING}={architecture}: its tokenizer or text tower is fetched from the "
            f"Hugging Face hub, which PhotoDB never does; choose an architecture with open_clip's own tokenizer"
        )
    return config


def _published_preprocess(open_clip: Any, model: Any, architecture: str) -> dict[str, Any]:
    """The model's input size with the normalisation its published weights were trained with."""
    config = dict(open_clip.get_model_preprocess_cfg(model))
    tags = open_clip.list_pretrained_tags_by_model(architecture)
    if tags:
        published = open_clip.get_pretrained_cfg(architecture, tags[0])
        config.update({k: published[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in published})
    return config


class ClipModel(LazyModel):
    """An open_clip model from a local safetensors file: L2-normalised image and text embeddings."""

    def __init__(
        self,
        weights: Path,
        *,
        architecture: str = "MobileCLIP-S2",
        sha256: str | None = None,
        config_file: Path | None = None,
        force_cpu: bool = False,
    ) -> None:
        super().__init__()
        self.weights = weights
        self.architecture = architecture
        self.model_name = clip_model_name(architecture)
        self._sha256 = sha256
        self._config_file = config_file
        self._force_cpu = force_cpu
        self._embedding_dim: int | None = None
        self.device = "cpu"
        self.sha256: str | None = None  # of the loaded file
        self._model: Any = None
        self._transform: Any = None
        self._tokenizer: Any = None

    @property
    def embedding_dim(self) -> int:
        """Width of the shared embedding space (512 for MobileCLIP-S2); read from the config, no load."""
        if self._embedding_dim is None:
            config = _architecture_config(_import_open_clip(), self.architecture, self._config_file)
            self._embedding_dim = int(config["embed_dim"])
        return self._embedding_dim

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the tensors `preprocess` returns."""
        self.load()
        size = self._model.visual.preprocess_cfg["size"]
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def _load(self) -> None:
        if self.weights.suffix.lower() != WEIGHTS_SUFFIX:
            raise ModelUnavailable(
                f"{self.weights}: CLIP weights are read only from a {WEIGHTS_SUFFIX} file (a pickle "
                f"checkpoint can run code when loaded); use the open_clip_model.safetensors of the release"
            )
        self.sha256 = verify_model_file(
            self.weights, setting=CLIP_SETTING, pin_setting=CLIP_PIN_SETTING, user_pin=self._sha256
        )
        open_clip = _import_open_clip()
        config = _architecture_config(open_clip, self.architecture, self._config_file)
        self._embedding_dim = int(config["embed_dim"])
        import torch
        from open_clip.transform import PreprocessCfg, image_transform_v2
        from timm.utils import reparameterize_model

        try:
            # A file path, never a tag or hub name: open_clip reads it with safetensors, strictly.
            model = open_clip.create_model(
                self.architecture, pretrained=str(self.weights), pretrained_image=False, pretrained_text=False
            )
        except Exception as error:
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelUnavailable(
                f"cannot load {self.weights} as {self.architecture} ({detail}); "
                f"set {CLIP_NAME_SETTING} to the file's open_clip architecture"
            ) from error
        model.eval()
        model = reparameterize_model(model, inplace=True)
        self.device = select_device(self._force_cpu)
        self._model = model.to(torch.device(self.device))
        preprocess = PreprocessCfg(**_published_preprocess(open_clip, model, self.architecture))
        self._transform = image_transform_v2(preprocess, is_train=False)
        self._tokenizer = open_clip.get_tokenizer(self.architecture)
        log.info("loaded %s from %s on %s", self.model_name, self.weights, self.device)

    def _inference(self) -> Any:
        """A context for one forward pass: inference mode, and the lock on MPS (see the module doc)."""
        import contextlib

        import torch

        stack = contextlib.ExitStack()
        if self.device == "mps":
            stack.enter_context(self._lock)
        stack.enter_context(torch.inference_mode())
        return stack

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One PIL image (any mode) as a (1, 3, H, W) float tensor on the CPU, ready for a batch."""
        self.load()
        return self._transform(image).unsqueeze(0)

    def encode_image_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """(n, dim) L2-normalised float32 CPU embeddings of n preprocessed images (n, 3, H, W)."""
        self.load()
        import torch

        if batch.shape[0] == 0:
            return torch.zeros((0, self.embedding_dim), dtype=torch.float32)
        with self._inference():
            features = self._model.encode_image(batch.to(self.device), normalize=True)
        return features.float().cpu()

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """(n, dim) float32 unit vectors for n PIL images, in one batch."""
        if not images:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        import torch

        batch = torch.cat([self.preprocess(image) for image in images])
        return self.encode_image_batch(batch).numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32 unit vectors for n texts, tokenized by open_clip's tokenizer."""
        if not texts:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        self.load()
        tokens = self._tokenizer(list(texts))
        with self._inference():
            features = self._model.encode_text(tokens.to(self.device), normalize=True)
        return features.float().cpu().numpy()

    def warm_up(self) -> None:
        """Load, then run one image and one text through the model, so the first photo pays no setup."""
        self.load()
        import torch

        height, width = self.image_size
        self.encode_image_batch(torch.zeros((1, 3, height, width)))
        self.encode_texts(["a photo"])


def create_clip_model(settings: Settings) -> ClipModel:
    """The CLIP model the settings describe (not loaded yet: `load()` or `warm_up()` does that)."""
    return ClipModel(
        settings.clip_model_file,
        architecture=settings.clip_model_name,
        sha256=settings.clip_model_sha256,
        config_file=settings.clip_model_config.expanduser() if settings.clip_model_config else None,
        force_cpu=settings.clip_force_cpu,
    )
