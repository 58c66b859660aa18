"""Stage 3: find faces and bodies, pair them, embed the faces, store it all for the photo.

Boxes are stored in pixels of the normalized PNG. The model set (yolo or offline) and the face
embedder are chosen once per run (see photodb.ml.person_detection and photodb.ml.face_embedding).
A missing model file stops the run at construction; the models load when the stage first claims
a photo (`ready`), and a corrupt or unverified file stops the run there, with one message instead
of failing every photo.

With `--parallel > 1` and BATCH_COORDINATOR_ENABLED, worker threads hand their images to a
`yolo` BatchCoordinator (YOLO_BATCH_ENABLED; not for CoreML) and their aligned face chips to an
`embedding` one, so models see batches instead of single images. That is for CUDA/MPS: on a CPU
batching gains nothing (see bench/detection.py) and is off unless BATCH_COORDINATOR_ON_CPU.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from photodb.stages.base import BaseStage, StageContext, StageUnavailable, require_ml_extra

if TYPE_CHECKING:
    from pathlib import Path

    from photodb.database.detection_repository import NewDetection, ReplaceOutcome
    from photodb.database.models import Photo
    from photodb.ml.batch_coordinator import BatchCoordinator
    from photodb.ml.boxes import Box, Detections

log = logging.getLogger(__name__)


class DetectionStage(BaseStage):
    name = "detection"
    depends_on = ("normalize",)

    def __init__(self, context: StageContext) -> None:
        super().__init__(context)
        require_ml_extra(self.name)  # without the extra there are no models (nor detections) to run
        from photodb.database.detection_repository import DetectionRepository
        from photodb.ml.base import model_not_found
        from photodb.ml.face_embedding import create_embedder, resolve_face_embedder
        from photodb.ml.person_detection import create_detector, resolve_backend

        settings = context.settings
        self.backend = resolve_backend(settings)
        wanted: dict[str, Path] = {}
        if self.backend == "yolo":
            wanted["DETECTION_MODEL_PATH"] = settings.detection_model_file
        if resolve_face_embedder(settings, self.backend) == "arcface":
            wanted["ARCFACE_MODEL_PATH"] = settings.arcface_model_file
        absent = {setting: path for setting, path in wanted.items() if not path.is_file()}
        if absent:
            paths = ", ".join(str(p) for p in absent.values())
            raise StageUnavailable(str(model_not_found(paths, " / ".join(absent))))
        self.detector = create_detector(settings, self.backend)
        self.embedder = create_embedder(settings, self.backend)
        self.repository = DetectionRepository(context.db)
        self.yolo_coordinator: BatchCoordinator | None = None
        self.embedding_coordinator: BatchCoordinator | None = None

    def load_models(self) -> None:
        from photodb.ml.base import ModelUnavailable

        settings = self.context.settings
        try:
            self.embedder.load()
            self.detector.load()  # last: CoreML must load after every other model (design, macOS)
        except ModelUnavailable as error:
            raise StageUnavailable(str(error)) from error
        log.info(
            "detection backend %s (DETECTION_BACKEND=%s): detector %s %s, embeddings %s",
            self.backend,
            settings.detection_backend,
            self.detector.model_name,
            self.detector.version,
            self.embedder.model_name,
        )
        if self.context.parallel > 1 and settings.batch_coordinator_enabled:
            if self.detector.device != "cpu" or settings.batch_coordinator_on_cpu:
                self._start_coordinators()
            else:
                # Measured (bench/detection.py): on a CPU a batch of n images costs n single calls
                # or a little more, and batching takes away the workers' overlap of model and I/O.
                log.info("batch coordinators off on CPU (set BATCH_COORDINATOR_ON_CPU=true to force)")

    def _start_coordinators(self) -> None:
        from photodb.ml.batch_coordinator import BatchCoordinator

        settings = self.context.settings
        # On a CPU a batch costs what its images cost one by one, so waiting to fill one only adds
        # latency: there the coordinators take whatever is queued (batches still form while the
        # model is busy). Accelerators gain from full batches and wait up to the configured time.
        accelerated = self.detector.device != "cpu"
        common: dict[str, Any] = {
            "max_batch_size": settings.batch_coordinator_max_size,
            "max_wait_ms": settings.batch_coordinator_max_wait_ms if accelerated else 0,
            "max_clients": self.context.parallel,
        }
        if settings.yolo_batch_enabled and self.detector.supports_batching:
            self.yolo_coordinator = BatchCoordinator(self.detector.detect_batch, mode="scalar", name="yolo", **common)
        elif settings.yolo_batch_enabled:
            log.info("no YOLO batch coordinator: the CoreML model takes one image per call")
        self.embedding_coordinator = BatchCoordinator(self._embed_rows, mode="list", name="face_embedding", **common)

    def _embed_rows(self, chips: list[np.ndarray]) -> list[np.ndarray]:
        return list(self.embedder.embed_batch(chips))

    # -- per photo -----------------------------------------------------------------------------

    def process(self, photo: Photo) -> None:
        import cv2

        self.ready()
        # Decoded once for the run's stages (StageContext.images); the models take BGR, as OpenCV reads.
        image = cv2.cvtColor(self.context.normalized_rgb(photo), cv2.COLOR_RGB2BGR)
        height, width = image.shape[:2]

        if self.yolo_coordinator is not None:
            found: Detections = self.detector.complete(image, self.yolo_coordinator.run(image))
        else:
            found = self.detector.detect(image)
        found = found.filtered(self.context.settings.detection_min_confidence, width, height)
        rows = self._rows(image, found)
        outcome = self.repository.replace_detections(photo.id, rows, self.detector.model_name, self.detector.version)
        log.debug("photo %s: %s", photo.id, outcome)
        if outcome.embedded_ids:
            self._assign_to_clusters(photo, outcome)

    def _assign_to_clusters(self, photo: Photo, outcome: ReplaceOutcome) -> None:
        """New faces join the active clustering run's identities, handed over as stored (with their
        embeddings), so that each costs one statement, not a read back first.

        A no-op before the first bootstrap or with CLUSTERING_ASSIGN_ON_DETECTION off (checked by
        assign_held_faces, the one place that reads it).

        The detections are already stored: whatever goes wrong in the assignment (the database,
        a damaged run, a bug) leaves the faces unclustered for `bootstrap_clusters.py --assign-new`
        instead of failing the photo's detection.
        """
        import psycopg

        from photodb.clustering.incremental import assign_held_faces
        from photodb.database.clustering.assignment import FaceToAssign

        faces = [
            FaceToAssign(detection_id, photo.id, photo.collection_id, model, embedding)
            for detection_id, (model, embedding) in zip(outcome.embedded_ids, outcome.embedded, strict=True)
        ]
        try:
            report = assign_held_faces(self.context.db, faces)
        except Exception as error:  # the photo's own work is done and stored: see the docstring
            detail = (str(error).splitlines() or [""])[0]
            if not isinstance(error, psycopg.Error):
                detail = f"{type(error).__name__}: {detail}"
            log.warning(
                "photo %s: faces stored but not assigned to clusters (%s); run scripts/bootstrap_clusters.py "
                "--assign-new later",
                photo.id,
                detail,
            )
            log.debug("cluster assignment failed", exc_info=True)
            return
        log.debug("photo %s: cluster assignment %s", photo.id, dict(report.outcomes))

    def _rows(self, image: np.ndarray, found: Detections) -> list[NewDetection]:
        from photodb.clustering.quality import face_sharpness
        from photodb.database.detection_repository import NewDetection
        from photodb.ml.alignment import pad_embedding, sharpness
        from photodb.ml.boxes import match_faces_to_bodies

        settings = self.context.settings
        pairs = match_faces_to_bodies(found.faces, found.bodies)
        chips: list[np.ndarray] = []
        chip_of: dict[int, tuple[int, bool]] = {}  # face index -> (chip index, aligned)
        for i, face in enumerate(found.faces):
            if min(face.width, face.height) < settings.detection_min_face_size:
                continue  # kept as a detection; too small to embed reliably
            prepared = self.embedder.prepare(image, face)
            if (
                settings.detection_min_face_sharpness
                and sharpness(prepared.chip) < settings.detection_min_face_sharpness
            ):
                continue
            chip_of[i] = (len(chips), prepared.aligned)
            chips.append(prepared.chip)
        vectors = self._embed(chips)

        rows = []
        for face_index, body_index in pairs:
            face: Box | None = found.faces[face_index] if face_index is not None else None
            body = found.bodies[body_index] if body_index is not None else None
            measured = face_sharpness(image, face) if face is not None else None
            if face_index is not None and face_index in chip_of:
                chip_index, aligned = chip_of[face_index]
                rows.append(
                    NewDetection(
                        face,
                        body,
                        embedding=pad_embedding(vectors[chip_index]),
                        embedding_model=self.embedder.model_name,
                        embedding_dim=self.embedder.dim,
                        aligned=aligned,
                        face_sharpness=measured,
                    )
                )
            else:
                rows.append(NewDetection(face, body, face_sharpness=measured))
        return rows

    def _embed(self, chips: list[np.ndarray]) -> list[np.ndarray]:
        if not chips:
            return []
        if self.embedding_coordinator is not None:
            return list(self.embedding_coordinator.run(chips))
        return list(self.embedder.embed_batch(chips))

    def close(self) -> None:
        for coordinator in (self.yolo_coordinator, self.embedding_coordinator):
            if coordinator is not None:
                coordinator.shutdown()
