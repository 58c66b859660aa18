"""ClipModel on real weights files made at test time: MobileCLIP-S2 with random weights, and a
tiny CLIP trained here on coloured shapes (tests/tiny_clip.py). Nothing is downloaded."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from photodb.config import Settings
from photodb.ml.base import ModelUnavailable
from photodb.ml.batch_coordinator import BatchCoordinator
from photodb.ml.clip import ClipModel, clip_model_name, create_clip_model
from tests.tiny_clip import (  # noqa: F401  (mobileclip_random, tiny_clip: session fixtures)
    CAPTIONS,
    CLASSES,
    ClipFiles,
    draw_shape,
    mobileclip_random,
    tiny_clip,
)


def clip_settings(home: Path, **overrides: object) -> Settings:
    return Settings(_env_file=None, photodb_home=home, **overrides)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def mobileclip(mobileclip_random: ClipFiles) -> ClipModel:  # noqa: F811
    """Loaded through the settings a user sets: MODELS_DIR holding the file, pinned by CLIP_MODEL_SHA256."""
    settings = clip_settings(
        mobileclip_random.weights.parent.parent,
        models_dir=mobileclip_random.weights.parent,
        clip_model_sha256=mobileclip_random.sha256,
    )
    assert settings.clip_model_file == mobileclip_random.weights
    model = create_clip_model(settings)
    model.warm_up()
    return model


def photos(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(7)
    sizes = [(320, 240), (200, 300), (640, 480)][:count]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB") for w, h in sizes]


def test_mobileclip_s2_preprocesses_to_its_input_size_with_mobileclip_normalisation(mobileclip: ClipModel):
    assert mobileclip.model_name == "mobileclip:s2" and mobileclip.embedding_dim == 512
    white = mobileclip.preprocess(Image.new("L", (400, 300), 255))  # any mode: converted to RGB
    assert white.shape == (1, 3, 256, 256) and white.dtype == torch.float32
    # MobileCLIP takes pixels in [0, 1] with no mean/std (OpenAI's normalisation would not give 1.0).
    assert torch.allclose(white, torch.ones_like(white))


def test_mobileclip_s2_batch_embeddings_are_unit_vectors_equal_to_single_ones(mobileclip: ClipModel):
    images = photos(3)
    batch = torch.cat([mobileclip.preprocess(image) for image in images])
    embedded = mobileclip.encode_image_batch(batch)
    assert embedded.shape == (3, 512) and embedded.dtype == torch.float32 and embedded.device.type == "cpu"
    assert torch.allclose(embedded.norm(dim=1), torch.ones(3), atol=1e-5)
    singles = np.concatenate([mobileclip.encode_images([image]) for image in images])
    np.testing.assert_allclose(embedded.numpy(), singles, atol=1e-5)
    assert mobileclip.encode_images([]).shape == (0, 512)


def test_mobileclip_s2_text_embeddings_use_the_real_tokenizer(mobileclip: ClipModel):
    texts = ["a dog on a beach", "a birthday party", "a dog on a beach"]
    embedded = mobileclip.encode_texts(texts)
    assert embedded.shape == (3, 512) and embedded.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embedded[0], embedded[2], atol=1e-6)
    assert not np.allclose(embedded[0], embedded[1], atol=1e-3)
    assert mobileclip.encode_texts([]).shape == (0, 512)


def test_a_weights_file_that_does_not_match_its_pin_is_refused(mobileclip_random: ClipFiles, tmp_path: Path):  # noqa: F811
    wrong = "0" * 64
    model = ClipModel(mobileclip_random.weights, sha256=wrong)
    with pytest.raises(ModelUnavailable, match=f"not {wrong} \\(CLIP_MODEL_SHA256\\)"):
        model.load()


def test_a_missing_weights_file_says_how_to_get_one(tmp_path: Path):
    settings = clip_settings(tmp_path)
    model = create_clip_model(settings)
    missing = tmp_path / "models" / "mobileclip_s2.safetensors"
    expected = f"model not found: {missing}: run scripts/download_models.sh or set CLIP_MODEL_PATH"
    with pytest.raises(ModelUnavailable) as raised:
        model.load()
    assert str(raised.value) == expected


def test_a_pickle_checkpoint_is_never_opened(tmp_path: Path):
    checkpoint = tmp_path / "mobileclip_s2.pt"
    torch.save({"state_dict": {}}, checkpoint)
    with pytest.raises(ModelUnavailable, match=r"only from a \.safetensors file"):
        ClipModel(checkpoint).load()


def test_weights_of_another_architecture_are_refused_with_the_setting_to_change(
    mobileclip_random: ClipFiles,  # noqa: F811
):
    model = ClipModel(mobileclip_random.weights, architecture="MobileCLIP-S1")
    with pytest.raises(ModelUnavailable, match=r"as MobileCLIP-S1 .*set CLIP_MODEL_NAME"):
        model.load()


def test_architectures_needing_the_hub_or_unknown_are_refused_before_reading_weights(tmp_path: Path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ModelUnavailable, match=r"CLIP_MODEL_NAME=ViT-B-16-SigLIP: .*Hugging Face hub"):
        ClipModel(weights, architecture="ViT-B-16-SigLIP").load()
    with pytest.raises(ModelUnavailable, match="CLIP_MODEL_NAME=NoSuchNet is not an open_clip architecture"):
        ClipModel(weights, architecture="NoSuchNet").load()


def test_a_config_file_must_be_named_by_clip_model_name(tiny_clip: ClipFiles, tmp_path: Path):  # noqa: F811
    settings = clip_settings(tmp_path, **(tiny_clip.settings_overrides() | {"clip_model_name": "MobileCLIP-S2"}))
    with pytest.raises(
        ModelUnavailable, match=r"defines architecture TinyCLIP-shapes: set CLIP_MODEL_NAME=TinyCLIP-shapes$"
    ):
        create_clip_model(settings).load()


def test_model_names_say_the_family():
    assert clip_model_name("MobileCLIP-S2") == "mobileclip:s2"
    assert clip_model_name("MobileCLIP2-B") == "mobileclip2:b"
    assert clip_model_name("ViT-B-32") == "openclip:ViT-B-32"


@pytest.fixture(scope="module")
def tiny(tiny_clip: ClipFiles, tmp_path_factory: pytest.TempPathFactory) -> ClipModel:  # noqa: F811
    settings = clip_settings(tmp_path_factory.mktemp("home"), **tiny_clip.settings_overrides())
    return create_clip_model(settings)


def held_out(per_class: int, seed: int) -> tuple[list[Image.Image], np.ndarray]:
    """Images the tiny model never saw (another seed than training), `per_class` of each caption."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    return [draw_shape(*CLASSES[label], rng) for label in labels], labels


def test_tiny_clip_classifies_held_out_shapes_zero_shot(tiny: ClipModel):
    assert tiny.model_name == "openclip:TinyCLIP-shapes" and tiny.embedding_dim == 512
    images, labels = held_out(per_class=20, seed=1234)
    similarity = tiny.encode_images(images) @ tiny.encode_texts(CAPTIONS).T
    accuracy = float((similarity.argmax(axis=1) == labels).mean())
    assert accuracy >= 0.9, accuracy


def test_tiny_clip_ranks_the_matching_images_first_for_a_text(tiny: ClipModel):
    images, labels = held_out(per_class=3, seed=4321)
    gallery = tiny.encode_images(images)
    for caption_index, caption in enumerate(CAPTIONS):
        ranking = np.argsort(-(gallery @ tiny.encode_texts([caption])[0]))
        assert list(labels[ranking[:3]]) == [caption_index] * 3, caption


def test_tiny_clip_loads_in_a_subprocess_from_its_environment(tiny_clip: ClipFiles, tmp_path: Path):  # noqa: F811
    """How `process-local` would see it: CLIP_MODEL_CONFIG registers the architecture there too."""
    script = (
        "from photodb.config import load_settings\n"
        "from photodb.ml.clip import create_clip_model\n"
        "model = create_clip_model(load_settings())\n"
        "print(model.model_name, model.encode_texts(['a red circle']).shape)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIP_")}
    env |= tiny_clip.environment() | {"PHOTODB_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("openclip:TinyCLIP-shapes (1, 512)")


def test_threads_encoding_at_once_get_what_they_would_alone(tiny: ClipModel):
    """The documented thread safety: concurrent calls on one loaded model give the sequential results."""
    images, _ = held_out(per_class=1, seed=99)
    alone = [tiny.encode_images([image]) for image in images]
    texts_alone = tiny.encode_texts(CAPTIONS)
    start = threading.Barrier(len(images))

    def encode(index: int) -> tuple[np.ndarray, np.ndarray]:
        start.wait()
        return tiny.encode_images([images[index]]), tiny.encode_texts(CAPTIONS)

    with ThreadPoolExecutor(len(images)) as pool:
        results = list(pool.map(encode, range(len(images))))
    for index, (embedded, texts) in enumerate(results):
        np.testing.assert_allclose(embedded, alone[index], atol=1e-6)
        np.testing.assert_allclose(texts, texts_alone, atol=1e-6)


def test_the_tensor_batch_coordinator_batches_preprocessed_images_to_the_same_embeddings(tiny: ClipModel):
    """The scene stage's clip_image path: workers submit `preprocess` output, one batched call answers."""
    images, _ = held_out(per_class=1, seed=11)
    alone = np.concatenate([tiny.encode_images([image]) for image in images])
    calls: list[int] = []

    def encode(batch: torch.Tensor) -> torch.Tensor:
        calls.append(batch.shape[0])
        return tiny.encode_image_batch(batch)

    coordinator = BatchCoordinator(
        encode, mode="tensor", max_wait_ms=10_000, max_clients=len(images), name="clip_image"
    )
    with coordinator, ThreadPoolExecutor(len(images)) as pool:
        results = list(pool.map(lambda image: coordinator.run(tiny.preprocess(image)), images))
    assert calls == [len(images)]
    assert all(result.shape == (1, tiny.embedding_dim) for result in results)
    np.testing.assert_allclose(torch.cat(results).numpy(), alone, atol=1e-6)
