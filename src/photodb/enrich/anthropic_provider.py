"""Anthropic: one photo through the Messages API (via instructor), many through the Message Batches API.

Sync (--no-batch): instructor (photodb.enrich.instructed) sends the schema as a forced tool and
validates the reply with Pydantic, re-asking LLM_REASKS times at most. Batches: the schema goes
as `output_config.format` (json_schema, made compatible by the SDK's `transform_schema`) and every
result is validated with Pydantic; an invalid one is that photo's failure. The static part
(instructions + schema) is one system block marked for prompt caching, identical in every request.

Retries: the SDK's own (LLM_MAX_RETRIES): 408/409/429/5xx and overloaded (529) with exponential
backoff and jitter, honouring retry-after / retry-after-ms. What still fails after them stops
the run (ProviderError) and the claimed photos go back to the queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import anthropic
from pydantic import ValidationError

from photodb.config import Settings
from photodb.enrich.instructed import InstructedAnalyzer, usage_of
from photodb.enrich.pricing import price_for
from photodb.enrich.provider import (
    Analysis,
    AnalysisFailed,
    BatchState,
    BatchStatus,
    ItemResult,
    ProviderError,
    describe_validation_error,
    parse_reply,
)
from photodb.enrich.request import ANTHROPIC_IMAGE_LIMITS, AnalysisRequest, system_prompt
from photodb.models.photo_analysis import PhotoAnalysisResponse

IMAGE_LIMITS = ANTHROPIC_IMAGE_LIMITS


def sync_params(model: str, max_tokens: int) -> dict[str, Any]:
    """What every sync request shares: the model and the cached system block (instructor adds the tool)."""
    return {
        "model": model,
        "max_tokens": max_tokens,
        "system": [{"type": "text", "text": system_prompt(), "cache_control": {"type": "ephemeral"}}],
    }


def static_params(model: str, max_tokens: int) -> dict[str, Any]:
    """Everything of a batch request that is the same for every photo (cached by the provider)."""
    return {
        **sync_params(model, max_tokens),
        "output_config": {
            "format": {
                "type": "json_schema",
                "schema": anthropic.transform_schema(PhotoAnalysisResponse.model_json_schema()),
            }
        },
    }


def user_message(request: AnalysisRequest) -> dict[str, Any]:
    image = request.image
    return {
        "role": "user",
        "content": [
            {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.data}},
            {"type": "text", "text": request.context.render()},
        ],
    }


def result_from_message(custom_id: str, message: dict[str, Any]) -> ItemResult:
    """A batch item from a Messages API reply (Anthropic batch results and Bedrock's modelOutput alike)."""
    usage = usage_of(message.get("usage"))
    if message.get("stop_reason") == "refusal":
        return ItemResult(custom_id, error="the model declined to analyse this photo", usage=usage)
    text = "".join(b.get("text", "") for b in message.get("content") or [] if b.get("type") == "text")
    try:
        response = parse_reply(text)
    except ValidationError as error:
        problem = describe_validation_error(error)
        return ItemResult(custom_id, error=f"reply does not match the schema: {problem}", usage=usage)
    return ItemResult(custom_id, analysis=Analysis(response, usage), usage=usage)


class AnthropicProvider:
    name = "anthropic"
    min_batch_records = 1

    def __init__(self, settings: Settings, *, client: anthropic.Anthropic | None = None) -> None:
        if settings.anthropic_api_key is None:
            raise ProviderError("ANTHROPIC_API_KEY is not set: enrich-photos needs it for LLM_PROVIDER=anthropic")
        self.model = settings.llm_model
        self.reasks = settings.llm_reasks
        self._secret = settings.anthropic_api_key.get_secret_value()
        self.client = client or anthropic.Anthropic(
            api_key=self._secret,
            base_url=settings.anthropic_base_url,
            max_retries=settings.llm_max_retries,
            timeout=settings.llm_timeout_seconds,
        )
        self._static = static_params(self.model, settings.llm_max_tokens)
        self._sync = sync_params(self.model, settings.llm_max_tokens)
        self._instructed = InstructedAnalyzer(
            self.client, self.reasks, label="Anthropic API", describe=self._describe, scrub=self._scrub
        )

    # -- one photo ---------------------------------------------------------------------------

    def analyze(self, request: AnalysisRequest) -> Analysis:
        return self._instructed.analyze(self._sync, user_message(request))

    # -- batches -----------------------------------------------------------------------------

    def ensure_batch_ready(self) -> None:
        """Nothing beyond the key, which the constructor already required."""

    def submit_batch(self, requests: Iterable[AnalysisRequest]) -> str:
        items = (
            {"custom_id": r.custom_id, "params": {**self._static, "messages": [user_message(r)]}} for r in requests
        )
        batch = self._call(lambda: self.client.messages.batches.create(requests=items))
        return batch.id

    def batch_status(self, batch_id: str) -> BatchStatus:
        batch = self._call(lambda: self.client.messages.batches.retrieve(batch_id))
        counts = batch.request_counts
        total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
        if batch.processing_status != "ended":
            return BatchStatus(BatchState.IN_PROGRESS, total - counts.processing, total)
        return BatchStatus(BatchState.ENDED, total, total)

    def batch_results(self, batch_id: str) -> Iterator[ItemResult]:
        """The result lines one at a time, read from the stream, never the whole file in memory."""
        manager = self.client.messages.batches.with_streaming_response.results(batch_id)
        response = self._call(manager.__enter__)
        try:
            for line in response.iter_lines():
                if line.strip():
                    yield self._item(line)
        finally:
            manager.__exit__(None, None, None)

    def _item(self, line: str) -> ItemResult:
        try:
            item = json.loads(line)
            custom_id = str(item["custom_id"])
            result = item["result"]
            kind = result["type"]
        except (ValueError, KeyError, TypeError):
            return ItemResult(custom_id="", error="malformed result line")
        if kind in ("expired", "canceled"):
            return ItemResult(custom_id, unprocessed=True, error=f"batch request {kind}")
        if kind == "errored":
            error = (result.get("error") or {}).get("error") or {}
            return ItemResult(custom_id, error=self._scrub(f"{error.get('type', 'error')}: {error.get('message', '')}"))
        return result_from_message(custom_id, result.get("message") or {})

    # -- configuration -----------------------------------------------------------------------

    def check(self) -> list[str]:
        """Key and model access through GET /v1/models/{model} (free), and whether the model has a price."""
        findings = []
        model = self._call(lambda: self.client.models.retrieve(self.model))
        findings.append(f"ok: Anthropic accepts the API key and serves {model.id}")
        if price_for(self.model) is None:
            findings.append(f"warning: no price known for {self.model}: costs will not be estimated")
        return findings

    # -- errors ------------------------------------------------------------------------------

    def _call(self, call: Any) -> Any:
        try:
            return call()
        except anthropic.BadRequestError as error:
            raise AnalysisFailed(self._describe(error)) from None
        except anthropic.APIStatusError as error:
            raise ProviderError(self._describe(error)) from None
        except anthropic.APIConnectionError as error:
            raise ProviderError(self._scrub(f"Anthropic API unreachable: {error}")) from None
        except anthropic.APIResponseValidationError as error:
            raise AnalysisFailed(self._scrub(f"malformed response from the Anthropic API: {error.message}")) from None

    def _describe(self, error: anthropic.APIStatusError) -> str:
        body = error.body if isinstance(error.body, dict) else {}
        detail = body.get("error") if isinstance(body.get("error"), dict) else {}
        kind = detail.get("type") or type(error).__name__
        message = detail.get("message") or ""
        retried = "" if error.status_code in (400, 401, 403, 404) else " (after retries)"
        return self._scrub(f"Anthropic API error {error.status_code}{retried}: {kind}: {message}".rstrip(": "))

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text
