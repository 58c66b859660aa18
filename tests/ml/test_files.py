"""Checksum rules for model files, on real files written here (torch checkpoints included)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from photodb.ml.base import ModelUnavailable
from photodb.ml.files import file_sha256, load_torch_checkpoint, manifest, verify_model_file

PIN = {"setting": "MIVOLO_MODEL_PATH", "pin_setting": "MIVOLO_MODEL_SHA256"}


def training_checkpoint(path: Path) -> Path:
    """Like MiVOLO's: a state dict plus an argparse Namespace, which only a full unpickle reads."""
    torch.save({"state_dict": {"w": torch.ones(2)}, "args": argparse.Namespace(min_age=1), "max_age": 95}, path)
    return path


def test_every_manifest_entry_names_its_settings_and_pins_only_real_hashes():
    for entry in manifest().values():
        assert entry.setting.endswith("_PATH") and entry.pin_setting.endswith("_SHA256")
        assert entry.sha256 is None or (len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0)
    assert manifest()["mivolo_d1.pth.tar"].sha256 is None  # none published: the user pins it


def test_an_unpinned_checkpoint_is_refused_and_a_pinned_one_loads(tmp_path: Path):
    path = training_checkpoint(tmp_path / "mine.pth.tar")
    with pytest.raises(ModelUnavailable, match=f"set MIVOLO_MODEL_SHA256={file_sha256(path)}$"):
        load_torch_checkpoint(path, **PIN)
    loaded = load_torch_checkpoint(path, **PIN, user_pin=f"sha256:{file_sha256(path).upper()}")
    assert loaded["max_age"] == 95 and loaded["args"].min_age == 1


def test_a_checkpoint_changed_after_pinning_is_refused(tmp_path: Path):
    path = training_checkpoint(tmp_path / "mine.pth.tar")
    pin = file_sha256(path)
    training_checkpoint(path).write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelUnavailable, match=f"not {pin} \\(MIVOLO_MODEL_SHA256\\)"):
        load_torch_checkpoint(path, **PIN, user_pin=pin)


def test_the_one_model_not_found_message(tmp_path: Path):
    with pytest.raises(ModelUnavailable) as info:
        verify_model_file(tmp_path / "mivolo_d1.pth.tar", **PIN)
    assert str(info.value) == (
        f"model not found: {tmp_path / 'mivolo_d1.pth.tar'}: run scripts/download_models.sh or set MIVOLO_MODEL_PATH"
    )


def test_an_unpinned_onnx_file_is_allowed(tmp_path: Path):
    """ONNX is a protobuf graph that onnxruntime interprets: no code runs on loading it."""
    path = tmp_path / "my_embedder.onnx"
    path.write_bytes(b"graph")
    assert verify_model_file(path, setting="ARCFACE_MODEL_PATH", pin_setting="ARCFACE_MODEL_SHA256") == file_sha256(
        path
    )
