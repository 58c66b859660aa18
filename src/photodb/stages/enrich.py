"""Stage R1 (Enrich): one photo's LLM analysis, stored with its tokens, cost and duration.

Not in process-local's stage list: every photo costs money, so only enrich-photos runs it. With
--no-batch the enrich runner claims photos and hands each to this stage; batches send many
requests at once (photodb.enrich.runner) but build each one here too. The stage settles the
photo's enrich row itself, under the runner's claim, in the same transaction as the analysis
(a claim lost meanwhile stores nothing), because the row's holder is the runner's, not a worker's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from photodb.database.enrich_repository import EnrichRepository, PhotoInput, StoredResult
from photodb.enrich.pricing import Usage, cost_cents
from photodb.enrich.provider import AnalysisFailed, LLMProvider
from photodb.enrich.request import AnalysisRequest, ImageLimits, ImageUnusable, encode_image
from photodb.stages.base import BaseStage, StageContext, StageFailure

if TYPE_CHECKING:
    from photodb.database.models import Photo


@dataclass(frozen=True)
class Enriched:
    """One photo's outcome; `sent` is False when no request could be built (no usable image)."""

    result: StoredResult
    sent: bool

    @property
    def ok(self) -> bool:
        return self.result.analysis is not None


class EnrichStage(BaseStage):
    name = "enrich"
    depends_on = ("normalize",)

    def __init__(self, context: StageContext, provider: LLMProvider, image_limits: ImageLimits, holder: str) -> None:
        """`holder`: the claim under which the photos handed to this stage are held (the enrich runner's)."""
        super().__init__(context)
        self.provider = provider
        self.image_limits = image_limits
        self.holder = holder
        self.repo = EnrichRepository(context.db)

    def process(self, photo: Photo) -> None:
        """BaseStage's entry: the photo's analysis is stored; a photo that fails raises StageFailure."""
        outcome = self.enrich(photo.id)
        if not outcome.ok:
            raise StageFailure(outcome.result.error or "enrich failed")

    def enrich(self, photo_id: int) -> Enriched:
        """Analyse one claimed photo and settle its row. ProviderError (the provider is unusable) propagates."""
        (photo,) = self.repo.photo_inputs([photo_id])
        request = self.request_for(photo)
        if isinstance(request, str):
            return Enriched(StoredResult(photo_id, None, request, Usage()), sent=False)
        try:
            analysis = self.provider.analyze(request)
        except AnalysisFailed as failure:
            result = StoredResult(photo_id, None, str(failure), failure.usage)
        else:
            cents = cost_cents(self.provider.model, analysis.usage, batch=False)
            result = StoredResult(photo_id, analysis.response, None, analysis.usage, cents, analysis.duration_ms)
        self.repo.store_sync(self.holder, result, self.provider.name, self.provider.model)
        return Enriched(result, sent=True)

    def request_for(self, photo: PhotoInput) -> AnalysisRequest | str:
        """The request for one claimed photo, or why it cannot be sent (already recorded as its failure)."""
        if not photo.normalized_path:
            problem = "no normalized image: run process-local first"
        else:
            try:
                image = encode_image(self.context.settings.images_dir / photo.normalized_path, self.image_limits)
            except ImageUnusable as error:
                problem = str(error)
            else:
                return AnalysisRequest(photo.photo_id, image, photo.context)
        self.repo.fail_claimed(self.holder, photo.photo_id, problem)
        return problem
