"""LLM enrichment (enrich-photos): requests, providers, prices and the runner."""

from __future__ import annotations

from photodb.config import Settings
from photodb.enrich.provider import LLMProvider
from photodb.enrich.request import ImageLimits


def create_provider(settings: Settings) -> tuple[LLMProvider, ImageLimits]:
    """The configured provider and its image limits; a missing setting raises ProviderError (one line)."""
    if settings.llm_provider == "anthropic":
        from photodb.enrich.anthropic_provider import IMAGE_LIMITS, AnthropicProvider

        return AnthropicProvider(settings), IMAGE_LIMITS
    from photodb.enrich.bedrock_provider import IMAGE_LIMITS as BEDROCK_LIMITS
    from photodb.enrich.bedrock_provider import BedrockProvider

    return BedrockProvider(settings), BEDROCK_LIMITS
