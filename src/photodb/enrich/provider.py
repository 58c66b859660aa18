"""The one interface every LLM provider implements, so the enrich runner never knows which it talks to.

A provider analyses one photo synchronously, or submits many as a batch, reports the batch's
state, and streams its results one item at a time (never the whole result file in memory).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import ValidationError

from photodb.enrich.pricing import Usage
from photodb.enrich.request import AnalysisRequest
from photodb.models.photo_analysis import PhotoAnalysisResponse

ProviderName = Literal["anthropic", "bedrock"]


class BatchState(StrEnum):
    IN_PROGRESS = "in_progress"
    ENDED = "ended"  # every item has a result (succeeded, errored, expired or canceled)
    EXPIRED = "expired"  # the provider gave up on the whole batch; items without a result are freed
    CANCELLED = "cancelled"
    FAILED = "failed"  # the job itself failed (Bedrock); its photos are freed


@dataclass(frozen=True)
class BatchStatus:
    state: BatchState
    done: int = 0
    total: int = 0
    message: str | None = None  # the provider's reason for a failed job


@dataclass(frozen=True)
class Analysis:
    """A validated answer for one photo."""

    response: PhotoAnalysisResponse
    usage: Usage
    duration_ms: int | None = None


@dataclass(frozen=True)
class ItemResult:
    """One line of a batch's results: an analysis, a failure, or 'not processed' (expired / cancelled)."""

    custom_id: str
    analysis: Analysis | None = None
    error: str | None = None
    unprocessed: bool = False  # expired or cancelled before it ran: the photo goes back to the queue
    usage: Usage = field(default_factory=Usage)


class AnalysisFailed(Exception):
    """This photo's reply was unusable (malformed, schema-invalid, refused); the photo fails with the message."""

    def __init__(self, message: str, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage or Usage()


class ProviderError(Exception):
    """The provider cannot be used now (credentials, quota, outage after retries): the run stops.

    The message is one line for the user and never holds a key, a role ARN or image data.
    """


class LLMProvider(Protocol):
    name: ProviderName
    model: str
    #: The fewest requests the provider accepts in one batch (smaller remainders wait or go one by one).
    min_batch_records: int

    def analyze(self, request: AnalysisRequest) -> Analysis: ...

    def ensure_batch_ready(self) -> None:
        """Raise ProviderError (one line) when batch mode lacks a setting, before anything is sent."""
        ...

    def submit_batch(self, requests: Iterable[AnalysisRequest]) -> str: ...

    def batch_status(self, batch_id: str) -> BatchStatus: ...

    def batch_results(self, batch_id: str) -> Iterator[ItemResult]: ...

    def check(self) -> list[str]:
        """What --check-config can verify without spending money; one line per finding."""
        ...


def parse_reply(text: str) -> PhotoAnalysisResponse:
    """The reply's JSON as a validated analysis; a ValidationError names what does not fit."""
    cleaned = text.strip()
    if cleaned.startswith("```"):  # a fenced reply from a model without structured output
        cleaned = cleaned.strip("`").removeprefix("json").strip()
    return PhotoAnalysisResponse.model_validate_json(cleaned)


def describe_validation_error(error: ValidationError, limit: int = 3) -> str:
    """A short, value-free summary: 'quality.score: Input should be less than or equal to 1; …'."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:limit]:
        where = ".".join(str(p) for p in item["loc"]) or "reply"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
