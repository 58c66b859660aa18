"""Stage 5: tag the photo and its faces with CLIP zero-shot prompts; keep its image embedding.

Per photo: the normalized image and each detected face (a square crop around the box, with
some context) are encoded with the CLIP image encoder (MobileCLIP-S2 by default, see
photodb.ml.clip); scene categories classify the image, face categories the crops (see
photodb.prompts.classify); Apple Vision's taxonomy (macOS) and offline object labels, when
available, add photo tags of categories 'taxonomy' and 'object'. Everything of one photo is
written in one transaction (database.scene_repository), replacing an earlier run's rows.

Without the CLIP weights the photos are skipped ("model not found: …"), never failed, and the next
run with the weights analyses them; object labels and Apple Vision need no download, so when either
is available their tags are stored before the photo is recorded as skipped with `partial_reason`
(the line plus the labellers that ran), which keeps the next run without the weights from labelling
them again. With neither, the stage does not run at all (`skip_reason`). With `--parallel > 1` on
an accelerator, worker threads' images go through the `clip_image` and `clip_face`
BatchCoordinators (tensor mode); on a CPU
batching loses (bench/scene_analysis.py: MobileCLIP-S2 batched at --parallel 8 ran at 0.45x of
unbatched) and is off unless BATCH_COORDINATOR_ON_CPU. The model and every prompt category warm up
when the stage first claims a photo (`ready`), before its first photo.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from photodb.database.scene_repository import SceneResults
from photodb.stages.base import BaseStage, StageContext, StageSkipped, StageUnavailable, require_ml_extra

if TYPE_CHECKING:
    from pathlib import Path

    from PIL import Image

    from photodb.database.models import Photo
    from photodb.database.scene_repository import FaceBox
    from photodb.ml.batch_coordinator import BatchCoordinator

log = logging.getLogger(__name__)

#: Context around a face box on each side, as a share of its longer side (hair, chin, gaze).
FACE_MARGIN = 0.25
TAXONOMY_CATEGORY = "taxonomy"
OBJECT_CATEGORY = "object"


class SceneAnalysisStage(BaseStage):
    name = "scene_analysis"
    depends_on = ("detection",)

    def __init__(self, context: StageContext) -> None:
        super().__init__(context)
        require_ml_extra(self.name)  # without the extra there are no models (nor detections) to run
        from photodb.database.scene_repository import SceneRepository
        from photodb.ml.clip import create_clip_model

        settings = context.settings
        self.repository = SceneRepository(context.db)
        self.clip_coordinator: BatchCoordinator | None = None
        self.face_coordinator: BatchCoordinator | None = None
        self.clip = create_clip_model(settings)
        self.taxonomy = _apple_vision()
        self.object_labeler = _object_labeler(settings)
        if not settings.clip_model_file.is_file():
            missing = str(_model_not_found(settings.clip_model_file))
            labellers = [m.model_name for m in (self.taxonomy, self.object_labeler) if m is not None]
            if labellers:
                self.partial_reason = f"{missing} (labels only: {', '.join(labellers)})"
            else:
                self.skip_reason = missing
            log.warning("scene_analysis: %s", self.partial_reason or self.skip_reason)

    def load_models(self) -> None:
        """CLIP and every prompt category first, then the labellers (Metal state order, spec, macOS)."""
        if self.skip_reason:
            return
        from photodb.database.prompt_repository import PromptRepository
        from photodb.ml.alignment import EMBEDDING_COLUMN_DIM
        from photodb.ml.base import ModelUnavailable
        from photodb.prompts.cache import PromptCache
        from photodb.prompts.embedding import ensure_default_prompts

        context, settings = self.context, self.context.settings
        if self.partial_reason is None:
            try:
                self.clip.warm_up()
            except ModelUnavailable as error:
                raise StageUnavailable(str(error)) from error
            if self.clip.embedding_dim > EMBEDDING_COLUMN_DIM:
                raise StageUnavailable(
                    f"{self.clip.model_name} gives {self.clip.embedding_dim}-d embeddings; "
                    f"photo_embedding holds at most {EMBEDDING_COLUMN_DIM}"
                )
            prompts = PromptRepository(context.db)
            context.db.call("storing the default prompts", ensure_default_prompts, prompts)
            self.prompts = PromptCache(prompts, self.clip)
            for target in ("scene", "face"):  # embeds missing labels now, not in the first photo
                context.db.call("loading prompts", self.prompts.categories, target)
        if self.taxonomy is not None:
            self.taxonomy.load()
        if self.object_labeler is not None:
            try:
                self.object_labeler.load()
            except ModelUnavailable as error:
                log.warning("object labels unavailable: %s", error)
                self.object_labeler = None
        if self.partial_reason is None and context.parallel > 1 and settings.batch_coordinator_enabled:
            if self.clip.device != "cpu" or settings.batch_coordinator_on_cpu:
                self._start_coordinators()
            else:
                log.info("clip batch coordinators off on CPU (set BATCH_COORDINATOR_ON_CPU=true to force)")

    def _start_coordinators(self) -> None:
        from photodb.ml.batch_coordinator import BatchCoordinator

        settings = self.context.settings
        accelerated = self.clip.device != "cpu"
        common: dict[str, Any] = {
            "mode": "tensor",
            "max_batch_size": settings.batch_coordinator_max_size,
            "max_wait_ms": settings.batch_coordinator_max_wait_ms if accelerated else 0,
            "max_clients": self.context.parallel,
        }
        self.clip_coordinator = BatchCoordinator(self.clip.encode_image_batch, name="clip_image", **common)
        self.face_coordinator = BatchCoordinator(self.clip.encode_image_batch, name="clip_face", **common)

    # -- per photo -----------------------------------------------------------------------------

    def process(self, photo: Photo) -> None:
        if self.skip_reason:
            raise StageSkipped(self.skip_reason)
        from PIL import Image

        self.ready()
        pixels = self.context.normalized_rgb(photo)  # decoded once for the run's stages
        image = Image.fromarray(pixels)
        path = self.context.normalized_path(photo)
        if self.partial_reason:
            labels_only = self._add_labels(SceneResults(clip_model=None, image_embedding=None), path, image)
            self.context.db.call("storing labels", self.repository.replace_results, photo.id, labels_only)
            raise StageSkipped(self.partial_reason)
        faces = self.context.db.call("reading faces", self.repository.face_boxes, photo.id)
        results = self.analyse(path, image, faces)
        counts = self.context.db.call("storing scene analysis", self.repository.replace_results, photo.id, results)
        log.debug("photo %s: %s", photo.id, counts)

    def analyse(self, path: Path, image: Image.Image, faces: list[FaceBox]) -> SceneResults:
        """Everything the stage finds in one image and its faces (no database writes)."""
        from photodb.database.scene_repository import DetectionTag, ModelOutput, PhotoTag
        from photodb.prompts.classify import classify

        crops = [(face, _face_crop(image, face)) for face in faces if _big_enough(face, self.min_face_side)]
        image_vector = self._encode(self.clip_coordinator, [image])[0]
        face_vectors = self._encode(self.face_coordinator, [crop for _, crop in crops]) if crops else None
        model = self.clip.model_name
        db = self.context.db
        scene_scores = classify(image_vector, db.call("loading prompts", self.prompts.categories, "scene"))[0]
        face_categories = db.call("loading prompts", self.prompts.categories, "face") if crops else []
        face_scores = classify(face_vectors, face_categories) if face_vectors is not None and face_categories else []

        results = SceneResults(clip_model=model, image_embedding=image_vector, faces_tagged=len(face_scores))
        results.outputs.append(
            ModelOutput(
                model,
                f"{self.clip.architecture} sha256:{self.clip.sha256}",
                {
                    "scene": {s.category: s.as_json() for s in scene_scores},
                    "faces": {
                        str(face.detection_id): {s.category: s.as_json() for s in scores}
                        for (face, _), scores in zip(crops, face_scores, strict=False)
                    },
                },
            )
        )
        for scores in scene_scores:
            results.photo_tags += [PhotoTag(t.category, t.label, t.confidence, model) for t in scores.chosen]
            if scores.chosen:
                results.scene_tags[scores.category] = [t.label for t in scores.chosen]
        for (face, _), scores_list in zip(crops, face_scores, strict=False):
            results.detection_tags += [
                DetectionTag(face.detection_id, t.category, t.label, t.confidence, model)
                for scores in scores_list
                for t in scores.chosen
            ]
        return self._add_labels(results, path, image)

    def _add_labels(self, results: SceneResults, path: Path, image: Image.Image) -> SceneResults:
        """Add the tags of the labellers that name things themselves (taxonomy, objects)."""
        from photodb.database.scene_repository import ModelOutput, PhotoTag

        for category, name, version, labels in self._label_sources(path, image):
            results.outputs.append(ModelOutput(name, version, {"labels": [[label, float(c)] for label, c in labels]}))
            results.photo_tags += [PhotoTag(category, label, float(c), name) for label, c in labels]
            if labels:
                results.scene_tags[category] = [label for label, _ in labels]
            if category == TAXONOMY_CATEGORY:
                results.taxonomy_model = name
            else:
                results.object_model = name
        return results

    @property
    def min_face_side(self) -> int:
        return self.context.settings.detection_min_face_size

    def _encode(self, coordinator: BatchCoordinator | None, images: list[Image.Image]) -> np.ndarray:
        """Unit-length CLIP image embeddings, (len(images), dim)."""
        import torch

        batch = torch.cat([self.clip.preprocess(image) for image in images])
        output = coordinator.run(batch) if coordinator is not None else self.clip.encode_image_batch(batch)
        vectors = output.detach().float().cpu().numpy() if hasattr(output, "detach") else np.asarray(output)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)

    def _label_sources(
        self, path: Path, image: Image.Image
    ) -> list[tuple[str, str, str | None, list[tuple[str, float]]]]:
        """(category, model name, version, labels) of the labellers that name things themselves."""
        found: list[tuple[str, str, str | None, list[tuple[str, float]]]] = []
        if self.taxonomy is not None:
            labels = [(label.identifier, label.confidence) for label in self.taxonomy.classify(path)]
            found.append((TAXONOMY_CATEGORY, self.taxonomy.model_name, None, labels))
        if self.object_labeler is not None:
            labeler = self.object_labeler
            found.append((OBJECT_CATEGORY, labeler.model_name, labeler.version, labeler.labels(np.asarray(image))))
        return found

    def close(self) -> None:
        for coordinator in (self.clip_coordinator, self.face_coordinator):
            if coordinator is not None:
                coordinator.shutdown()


def _model_not_found(path: object) -> Exception:
    from photodb.ml.base import model_not_found

    return model_not_found(path, "CLIP_MODEL_PATH")


def _big_enough(face: FaceBox, min_side: int) -> bool:
    return min(face.width, face.height) >= max(min_side, 1)


def _face_crop(image: Image.Image, face: FaceBox) -> Image.Image:
    """A square around the face with FACE_MARGIN of context, moved inside the image where it can be."""
    side = max(face.width, face.height) * (1 + 2 * FACE_MARGIN)
    side = min(side, float(min(image.size)))
    cx, cy = face.x + face.width / 2, face.y + face.height / 2
    left = min(max(cx - side / 2, 0.0), image.width - side)
    top = min(max(cy - side / 2, 0.0), image.height - side)
    return image.crop((round(left), round(top), round(left + side), round(top + side)))


def _apple_vision() -> Any:
    """Apple Vision's classifier (not loaded yet) on macOS; else None (said once per run, here)."""
    from photodb.ml.apple_vision import AppleVisionClassifier

    classifier = AppleVisionClassifier()
    if not classifier.available():
        log.info("Apple Vision taxonomy unavailable: %s", classifier.reason)
        return None
    return classifier


def _object_labeler(settings: Any) -> Any:
    """Offline object labels (photodb.ml.object_labels, not loaded yet) when that module and its weights exist."""
    try:
        from photodb.ml.object_labels import create_object_labeler  # type: ignore[import-not-found]
    except ModuleNotFoundError as error:
        if error.name != "photodb.ml.object_labels":
            raise
        return None
    return create_object_labeler(settings)
