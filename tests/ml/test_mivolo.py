"""MiVOLO: the network's state dict against the published checkpoint's keys, checkpoint loading and
its errors, MiVOLO's crops, and the real load -> crop -> predict path on a sample photo."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from photodb.config import Settings
from photodb.ml.age_gender import PersonBoxes
from photodb.ml.base import ModelUnavailable
from photodb.ml.boxes import Box
from photodb.ml.files import file_sha256
from photodb.ml.mivolo import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MiVOLOAgeGender,
    body_crop,
    create_mivolo,
    face_crop,
    letterbox,
    network_input,
)
from photodb.ml.mivolo_model import FaceBodyCrossAttention, MiVOLO
from tests.mivolo_checkpoint import make_mivolo_checkpoint
from tests.samples import SAMPLES

KEYS = Path(__file__).resolve().parents[1] / "data" / "mivolo_d1_keys.json"
GROUP_PHOTO = SAMPLES / "faces" / "vladmandic_face_api" / "sample1.jpg"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def box(x: float, y: float, w: float, h: float) -> Box:
    return Box(x, y, w, h, 0.9)


def settings_for(path: Path, pin: str | None) -> Settings:
    return Settings(_env_file=None, mivolo_model_path=path, mivolo_model_sha256=pin, mivolo_force_cpu=True)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mivolo_checkpoint(tmp_path_factory.mktemp("mivolo") / "mivolo_d1.pth.tar", seed=1)


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> MiVOLOAgeGender:
    mivolo = create_mivolo(settings_for(checkpoint, file_sha256(checkpoint)))
    mivolo.load()
    return mivolo


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    with Image.open(GROUP_PHOTO) as image:
        return np.asarray(image.convert("RGB"))


# People of the group photo: boxes the offline detector finds there (YuNet faces, YOLO11n-pose bodies).
WITH_BOTH = PersonBoxes(1, face=box(414, 358, 184, 234), body=box(150, 241, 571, 1024))
FACE_ONLY = PersonBoxes(2, face=box(830, 434, 210, 222), body=None)
BODY_ONLY = PersonBoxes(3, face=None, body=box(1214, 176, 573, 1088))
TOO_SMALL = PersonBoxes(4, face=None, body=box(10, 10, 40, 40))


def test_the_network_has_exactly_the_published_checkpoint_keys_and_shapes():
    expected = json.loads(KEYS.read_text())["keys"]
    network = MiVOLO()
    actual = {name: list(tensor.shape) for name, tensor in network.state_dict().items()}
    assert sorted(set(expected) - set(actual)) == []
    assert sorted(set(actual) - set(expected)) == []
    assert {k: v for k, v in actual.items() if expected[k] != v} == {}
    assert sum(p.numel() for p in network.parameters()) == 27_432_414


def test_cross_attention_is_face_to_body_and_body_to_face_with_relative_positions():
    """The fused attention call against the formula written out: softmax(q k^T * scale + rel) v."""
    torch.manual_seed(0)
    block = FaceBodyCrossAttention(dim=16, grid=(4, 4)).eval()
    face, body = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4, 4)

    def qkv(x: torch.Tensor, conv: torch.nn.Module) -> list[torch.Tensor]:
        return list(conv(x).reshape(2, 48, 16).split(16, dim=1))  # each (B, dim, HW)

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = q.transpose(1, 2)
        weights = ((q @ k) * 16**-0.5 + block.pos_embed(q)).softmax(dim=-1)
        return (weights @ v.transpose(1, 2)).transpose(1, 2).reshape(2, 16, 4, 4)

    qf, kf, vf = qkv(face, block.qkv_f)
    qp, kp, vp = qkv(body, block.qkv_p)
    expected = block.mlp(block.norm(torch.cat((attend(qf, kp, vp), attend(qp, kf, vf)), dim=1)))
    with torch.no_grad():
        torch.testing.assert_close(block(face, body), expected)
        assert not torch.allclose(block(face, body), block(body, face))


def test_body_crop_blacks_out_every_face_and_the_other_peoples_bodies(photo: np.ndarray):
    image = np.maximum(photo[:400, :600], 1)  # no black pixels of its own
    person = PersonBoxes(1, face=box(150, 60, 60, 60), body=box(100, 50, 200, 300))
    neighbour = PersonBoxes(2, face=box(300, 120, 50, 50), body=box(250, 100, 200, 250))
    crop = body_crop(image, person, [person, neighbour])
    # The neighbour's body covers the crop's right quarter; starting 50 px below the top (within
    # 30 % of the edge) it is widened to full height, and those all-black columns are trimmed.
    expected = image[50:350, 100:250].copy()
    expected[10:70, 50:110] = 0  # the person's own face
    assert crop is not None and crop.shape == (300, 150, 3)
    np.testing.assert_array_equal(crop, expected)
    # The neighbour's crop: the first person's body covers its left quarter (trimmed), and its
    # own face is blacked out; the first person's face does not reach into it.
    theirs = body_crop(image, neighbour, [person, neighbour])
    expected = image[100:350, 300:450].copy()
    expected[20:70, 0:50] = 0
    assert theirs is not None
    np.testing.assert_array_equal(theirs, expected)


def test_body_crops_too_small_or_mostly_covered_are_not_used(photo: np.ndarray):
    small = PersonBoxes(1, face=None, body=box(0, 0, 49, 300))
    assert body_crop(photo, small, [small]) is None
    person = PersonBoxes(1, face=None, body=box(100, 100, 200, 400))
    covering = PersonBoxes(2, face=None, body=box(100, 80, 130, 500))
    assert body_crop(photo, person, [person, covering]) is None
    assert face_crop(photo, box(5000, 10, 20, 20)) is None  # outside the photo


def test_letterbox_keeps_the_aspect_and_centres_on_black():
    crop = np.full((100, 50, 3), 200, dtype=np.uint8)
    boxed = letterbox(crop, 224)
    assert boxed.shape == (224, 224, 3)
    assert not boxed[:, :56].any() and not boxed[:, 168:].any()
    assert (boxed[:, 56:168] == 200).all()
    black = network_input(None, 224)
    assert black.shape == (3, 224, 224) and black.dtype == np.float32
    np.testing.assert_allclose(black[:, 0, 0], -IMAGENET_MEAN / IMAGENET_STD, rtol=1e-6)
    np.testing.assert_allclose(network_input(np.zeros((30, 70, 3), np.uint8), 224), black)
    white = network_input(np.full((224, 224, 3), 255, np.uint8), 224)
    np.testing.assert_allclose(white[:, 5, 5], (1 - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-6)


def test_predict_on_a_real_photo_batches_all_people_in_one_forward_pass(model: MiVOLOAgeGender, photo: np.ndarray):
    batches: list[tuple[int, ...]] = []
    hook = model._network.register_forward_hook(lambda _m, args, _o: batches.append(tuple(args[0].shape)))
    try:
        people = [WITH_BOTH, FACE_ONLY, BODY_ONLY, TOO_SMALL]
        estimates = model.predict(photo, people)
    finally:
        hook.remove()
    assert batches == [(3, 6, 224, 224)]
    assert [e.detection_id for e in estimates] == [1, 2, 3, 4]
    assert [e.raw.get("inputs") for e in estimates] == [
        {"face": True, "body": True},
        {"face": True, "body": False},
        {"face": False, "body": True},
        None,
    ]
    last = estimates[3]
    assert last.age is None and last.male_probability is None and last.raw["model"] == "mivolo:d1"
    ages = []
    for estimate in estimates[:3]:
        raw = json.loads(json.dumps(estimate.raw))  # stored as JSONB
        assert raw["model"] == model.model_name == "mivolo:d1"
        male_logit, female_logit, normalized_age = raw["output"]
        assert estimate.age == pytest.approx(normalized_age * (95 - 1) + 48)
        assert estimate.male_probability == pytest.approx(1 / (1 + math.exp(female_logit - male_logit)))
        assert 0 < estimate.male_probability < 1
        assert raw["checkpoint"]["input_size"] == 224 and raw["checkpoint"]["with_persons"] is True
        assert raw["checkpoint"]["version"] == f"sha256:{file_sha256(model.path)}"
        ages.append(estimate.age)
    assert len(set(ages)) == 3  # three different inputs, three different outputs
    assert model.predict(photo, []) == []
    with pytest.raises(ValueError, match="RGB uint8 image"):
        model.predict(photo[:, :, 0], [WITH_BOTH])


def test_ages_and_gender_follow_the_checkpoint_meta(tmp_path: Path, photo: np.ndarray):
    """With zeroed head weights the output is the biases: head + 0.5 * aux_head (token max)."""

    def known_head(state: dict[str, Any]) -> None:
        for name in ("head", "aux_head"):
            state[f"{name}.weight"].zero_()
        state["head.bias"].copy_(torch.tensor([1.0, -1.0, 0.2]))
        state["aux_head.bias"].copy_(torch.tensor([0.0, 0.0, 0.1]))

    path = make_mivolo_checkpoint(
        tmp_path / "mine.pth.tar", meta={"min_age": 5, "max_age": 85, "avg_age": 40}, edit=known_head, ema=True
    )
    mivolo = MiVOLOAgeGender(path, pin=file_sha256(path), force_cpu=True)
    estimates = mivolo.predict(photo, [WITH_BOTH, BODY_ONLY])
    for estimate in estimates:
        assert estimate.age == pytest.approx((0.2 + 0.5 * 0.1) * (85 - 5) + 40, abs=1e-4)  # 60
        assert estimate.male_probability == pytest.approx(1 / (1 + math.exp(-2.0)), abs=1e-5)
    assert estimates[0].raw["checkpoint"] | {"version": None} == {
        "min_age": 5.0,
        "max_age": 85.0,
        "avg_age": 40.0,
        "no_gender": False,
        "with_persons": True,
        "input_size": 224,
        "version": None,
    }


def test_a_face_only_checkpoint_uses_faces_only(tmp_path: Path, photo: np.ndarray):
    path = make_mivolo_checkpoint(tmp_path / "faces.pth.tar", in_chans=3, meta={"with_persons_model": None})
    mivolo = MiVOLOAgeGender(path, pin=file_sha256(path), force_cpu=True)
    with_both, face_only, body_only = mivolo.predict(photo, [WITH_BOTH, FACE_ONLY, BODY_ONLY])
    assert mivolo.meta is not None and not mivolo.meta.with_persons
    assert with_both.raw["inputs"] == {"face": True, "body": False} and face_only.age is not None
    assert body_only.age is None


def test_missing_unpinned_and_mismatched_files_are_refused_before_unpickling(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
):
    opened: list[object] = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: opened.append(a) or real_load(*a, **k))
    missing = tmp_path / "models" / "mivolo_d1.pth.tar"
    with pytest.raises(ModelUnavailable) as info:
        create_mivolo(settings_for(missing, None)).load()
    assert str(info.value) == f"model not found: {missing}: run scripts/download_models.sh or set MIVOLO_MODEL_PATH"
    with pytest.raises(
        ModelUnavailable,
        match=f"no pinned checksum: if you trust it, set MIVOLO_MODEL_SHA256={file_sha256(checkpoint)}",
    ):
        create_mivolo(settings_for(checkpoint, None)).load()
    with pytest.raises(ModelUnavailable, match=r"not 0{64} \(MIVOLO_MODEL_SHA256\)"):
        create_mivolo(settings_for(checkpoint, "0" * 64)).load()
    assert opened == []


def _drop_head_bias(state: dict[str, Any]) -> None:
    del state["head.bias"]


def _add_extra_key(state: dict[str, Any]) -> None:
    state["patch_embed.conv.0.weight"] = torch.zeros(64, 6, 7, 7)


def _resize_norm(state: dict[str, Any]) -> None:
    state["patch_embed.map.norm.weight"] = torch.ones(384)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_drop_head_bias, r"missing 1 key\(s\) \(head\.bias\)"),
        (_add_extra_key, r"unexpected 1 key\(s\) \(patch_embed\.conv\.0\.weight\)"),
        (_resize_norm, r"wrong shape for 1 key\(s\) \(patch_embed\.map\.norm\.weight\)"),
    ],
)
def test_strict_loading_refuses_a_checkpoint_that_does_not_fit(tmp_path: Path, edit: Any, message: str):
    path = make_mivolo_checkpoint(tmp_path / "odd.pth.tar", edit=edit)
    with pytest.raises(ModelUnavailable, match=f"does not fit the MiVOLO-D1 network: {message}"):
        MiVOLOAgeGender(path, pin=file_sha256(path), force_cpu=True).load()


def test_a_checkpoint_without_its_meta_fields_is_not_a_mivolo_checkpoint(tmp_path: Path):
    path = make_mivolo_checkpoint(tmp_path / "no_meta.pth.tar", meta={"min_age": None})
    with pytest.raises(ModelUnavailable, match=r"is not a MiVOLO checkpoint: no 'min_age'"):
        MiVOLOAgeGender(path, pin=file_sha256(path), force_cpu=True).load()
    other = tmp_path / "other.pth.tar"
    torch.save({"model": {"weight": torch.zeros(1)}}, other)
    with pytest.raises(ModelUnavailable, match=r"is not a MiVOLO checkpoint: no 'state_dict'"):
        MiVOLOAgeGender(other, pin=file_sha256(other), force_cpu=True).load()
