"""LLM enrichment (enrich-photos): requests, providers, prices and the runner."""

from __future__ import annotations

from photodb.config import Settings
from photodb.enrich.provider import LLMProvider, ProviderError
from photodb.enrich.request import ImageLimits


def create_provider(settings: Settings) -> tuple[LLMProvider, ImageLimits]:
    """The configured provider and its image limits; a missing setting is a ProviderError (one line)."""
    if settings.llm_provider == "anthropic":
        from photodb.enrich.anthropic_provider import IMAGE_LIMITS, AnthropicProvider

        return AnthropicProvider(settings), IMAGE_LIMITS
    raise ProviderError("LLM_PROVIDER=bedrock is not built yet: set LLM_PROVIDER=anthropic")
