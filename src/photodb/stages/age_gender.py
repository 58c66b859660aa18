"""Stage 4: age and gender of every detected person, on the detections the detection stage stored.

The model is chosen once per run, when the stage first claims a photo
(photodb.ml.age_gender.create_age_gender_model): MiVOLO when its
file is there (face + body), else the offline model whose weights ship in a package (faces only).
Each detection row gets age_estimate, gender ('U' when the model's probability for the chosen
gender is below AGE_GENDER_GENDER_MIN_CONFIDENCE), gender_confidence, the model's raw output in
mivolo_output, and which model ran in age_gender_model.

Inference is serialised with one lock per stage, as the spec has it (torch models on MPS are not
safe to call from several threads); the stage runs last so that this holds up no batching stage.
With no usable model the stage sets `skip_reason`: photos are skipped with it, never failed.
Without the ml extra at all the stage is unavailable, as detection is.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from photodb.stages.base import BaseStage, StageContext, StageSkipped, require_ml_extra

if TYPE_CHECKING:
    from photodb.database.age_gender_repository import StoredEstimate
    from photodb.database.models import Photo
    from photodb.ml.age_gender import AgeGenderEstimate, AgeGenderModel

log = logging.getLogger(__name__)


def gender_of(male_probability: float | None, min_confidence: float) -> tuple[str | None, float | None]:
    """('M' | 'F' | 'U', confidence of the likelier gender), or (None, None) without an estimate."""
    if male_probability is None:
        return None, None
    confidence = max(male_probability, 1.0 - male_probability)
    if confidence < min_confidence:
        return "U", confidence
    return ("M" if male_probability >= 0.5 else "F"), confidence


class AgeGenderStage(BaseStage):
    name = "age_gender"
    depends_on = ("detection",)

    def __init__(self, context: StageContext) -> None:
        super().__init__(context)
        require_ml_extra(self.name)  # without the extra there are no models (nor detections) to run
        from photodb.database.age_gender_repository import AgeGenderRepository
        from photodb.ml.age_gender import missing_age_gender_file

        self.model: AgeGenderModel | None = None
        missing = missing_age_gender_file(context.settings)
        if missing is not None:
            self.skip_reason = f"no age/gender model: {missing}"
            log.warning("age_gender: %s", self.skip_reason)
        self.repository = AgeGenderRepository(context.db)
        self._inference_lock = threading.Lock()

    def load_models(self) -> None:
        """Choose and load the model; with none usable every photo is skipped with the reason."""
        from photodb.ml.age_gender import create_age_gender_model

        if self.skip_reason is not None:
            return
        choice = create_age_gender_model(self.context.settings)
        self.model = choice.model
        if choice.model is None:
            self.skip_reason = f"no age/gender model: {choice.reason}"
            log.warning("age_gender: %s", self.skip_reason)
        else:
            log.info("age_gender model %s", choice.model.model_name)

    def process(self, photo: Photo) -> None:
        self.ready()
        if self.model is None:
            raise StageSkipped(self.skip_reason or "no age/gender model")
        people = self.repository.people_of_photo(photo.id)
        if not people:
            return
        image = self.context.normalized_rgb(photo)  # after the query: no decode for photos without people
        with self._inference_lock:
            estimates = self.model.predict(image, people)
        stored = [self._stored(estimate) for estimate in estimates]
        self.repository.store_estimates(photo.id, stored)

    def _stored(self, estimate: AgeGenderEstimate) -> StoredEstimate:
        from photodb.database.age_gender_repository import StoredEstimate

        assert self.model is not None
        floor = self.context.settings.age_gender_gender_min_confidence
        gender, confidence = gender_of(estimate.male_probability, floor)
        age = None if estimate.age is None else max(0.0, float(estimate.age))
        output = {"model": self.model.model_name, **estimate.raw}
        return StoredEstimate(estimate.detection_id, age, gender, confidence, output, self.model.model_name)
