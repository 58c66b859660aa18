"""The packaged offline age/gender model on real labelled faces, its preprocessing, and the model choice.

Labels: ages from the people's published birth dates and the photos' EXIF dates (Biden born
1942-11-20, photo 2010-05-10: 67; Obama born 1961-08-04, photos 2012-12-06 and 2009-09-09: 51 and
48; Grace Hopper born 1906-12-09, portrait of 1984: 77); Eileen Collins (tests/data/astronaut.jpg)
is the female face the model gets right (it calls Grace Hopper in uniform a man, so her gender
is not asserted). Bounds are loose: they catch a broken pipeline (wrong colour order, alignment,
normalisation, class order), not the model's own error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photodb.config import Settings
from photodb.ml.age_gender import PersonBoxes, create_age_gender_model
from photodb.ml.boxes import Box
from photodb.ml.cydral_age_gender import (
    AGE_CLASS_VALUES,
    CHANNEL_MEANS,
    CydralAgeGender,
    chip_tensor,
    expected_age,
)
from photodb.ml.person_detection import OfflineDetector
from tests.samples import SAMPLES

DATA = Path(__file__).resolve().parents[1] / "data"

#: photo, gender, true age, (lowest, highest) accepted estimate
LABELLED = [
    (SAMPLES / "faces/face_recognition/biden.jpg", "M", 67, (55, 80)),
    (SAMPLES / "faces/face_recognition/obama.jpg", "M", 51, (30, 65)),
    (SAMPLES / "faces/face_recognition/obama2.jpg", "M", 48, (35, 62)),
    (SAMPLES / "faces/matplotlib/grace_hopper.jpg", None, 77, (62, 81)),
    (DATA / "astronaut.jpg", "F", 41, (25, 55)),
]


@pytest.fixture(scope="module")
def model() -> CydralAgeGender:
    loaded = CydralAgeGender()
    loaded.load()
    return loaded


@pytest.fixture(scope="module")
def detector() -> OfflineDetector:
    found = OfflineDetector(min_confidence=0.5, face_min_confidence=0.8, force_cpu=True)
    found.load()
    return found


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def largest_face(detector: OfflineDetector, image_rgb: np.ndarray) -> Box:
    faces = detector.detect(np.ascontiguousarray(image_rgb[:, :, ::-1])).faces
    assert faces, "the offline detector found no face"
    return max(faces, key=lambda box: box.area)


@pytest.mark.parametrize(("path", "gender", "true_age", "bounds"), LABELLED, ids=[p[0].name for p in LABELLED])
def test_plausible_age_and_gender_for_known_faces(model, detector, path, gender, true_age, bounds):
    image = rgb(path)
    [estimate] = model.predict(image, [PersonBoxes(7, largest_face(detector, image), None)])
    assert estimate.detection_id == 7
    assert estimate.age is not None and bounds[0] <= estimate.age <= bounds[1], (true_age, estimate.age)
    assert estimate.male_probability is not None
    if gender is not None:
        assert (estimate.male_probability >= 0.5) == (gender == "M"), estimate.male_probability
        assert max(estimate.male_probability, 1 - estimate.male_probability) > 0.9
    raw = estimate.raw
    assert raw["model"] == "cydral:age-v1+gender-v1" and raw["input"] == "face"
    assert len(raw["age_probabilities"]) == 81 and sum(raw["age_probabilities"]) == pytest.approx(1, abs=1e-3)
    assert raw["gender_probabilities"]["male"] == pytest.approx(estimate.male_probability, abs=1e-5)
    assert len(raw["landmarks"]) == 5


def test_every_person_gets_an_answer_in_order_and_bodies_alone_get_none(model, detector):
    image = rgb(SAMPLES / "faces/face_recognition/biden.jpg")
    face = largest_face(detector, image)
    body = Box(0, 0, image.shape[1], image.shape[0], 0.9)
    people = [PersonBoxes(3, None, body), PersonBoxes(1, face, body), PersonBoxes(2, face, None)]
    estimates = model.predict(image, people)
    assert [e.detection_id for e in estimates] == [3, 1, 2]
    assert estimates[0].age is None and estimates[0].male_probability is None
    assert estimates[0].raw == {"model": "cydral:age-v1+gender-v1", "input": "none"}
    # the same face gives the same answer whether or not a body comes with it (faces only)
    assert estimates[1].age == pytest.approx(estimates[2].age)
    assert model.predict(image, []) == []


def test_a_face_box_partly_outside_the_image_is_clipped_not_an_error(model, detector):
    image = rgb(SAMPLES / "faces/face_recognition/obama.jpg")
    face = largest_face(detector, image)
    shifted = Box(face.x - face.width / 2, face.y - face.height / 2, face.width * 3, face.height * 3, 0.9)
    [estimate] = model.predict(image, [PersonBoxes(1, shifted, None)])
    assert estimate.age is not None and 0 <= estimate.age <= 80


def test_chips_are_normalised_as_the_networks_were_trained():
    chip = np.empty((2, 2, 3), dtype=np.uint8)
    chip[...] = [123, 117, 104]
    tensor = chip_tensor([chip, chip])
    assert tensor.shape == (2, 3, 2, 2) and tensor.dtype == np.float32
    expected = (np.array([123, 117, 104], dtype=np.float32) - CHANNEL_MEANS) / 256
    assert np.allclose(tensor[0, :, 0, 0], expected)


def test_age_is_the_expectation_over_the_classes():
    one_hot = np.zeros((2, 81), dtype=np.float32)
    one_hot[0, 0] = 1
    one_hot[1, 30] = one_hot[1, 40] = 0.5
    assert expected_age(one_hot) == pytest.approx([0.25, 35.0])
    assert AGE_CLASS_VALUES[80] == 80


def test_auto_uses_the_offline_model_without_a_mivolo_file(tmp_path: Path):
    settings = Settings(_env_file=None, models_dir=tmp_path)  # type: ignore[call-arg]
    choice = create_age_gender_model(settings)
    assert choice.model is not None and choice.model.model_name == "cydral:age-v1+gender-v1"


def test_auto_falls_back_to_the_offline_model_when_the_mivolo_file_is_unusable(tmp_path: Path):
    (tmp_path / "mivolo_d1.pth.tar").write_bytes(b"not a checkpoint")
    settings = Settings(_env_file=None, models_dir=tmp_path)  # type: ignore[call-arg]
    choice = create_age_gender_model(settings)
    assert choice.model is not None and choice.model.model_name == "cydral:age-v1+gender-v1"


def test_mivolo_asked_for_but_missing_gives_no_model_and_the_reason(tmp_path: Path):
    settings = Settings(_env_file=None, models_dir=tmp_path, age_gender_model="mivolo")  # type: ignore[call-arg]
    choice = create_age_gender_model(settings)
    assert choice.model is None
    assert choice.reason is not None and "model not found" in choice.reason and "MIVOLO_MODEL_PATH" in choice.reason
