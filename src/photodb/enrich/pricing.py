"""Every LLM price PhotoDB knows, in one table: USD per million tokens, per model.

Prices from the providers' pricing pages (checked 2026-11). Cache writes are the 5-minute tier;
Anthropic's and Bedrock's batch APIs charge half the input and output price (cache prices are
discounted the same way). A model missing here has no cost estimate (NULL), never a guessed one.
"""

from __future__ import annotations

from dataclasses import dataclass

BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float


@dataclass(frozen=True)
class Usage:
    """Tokens of one request or one batch; input_tokens excludes the cached parts."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_tokens + other.cache_creation_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
        )


_OPUS_4_5 = Price(input=5.0, output=25.0, cache_write=6.25, cache_read=0.50)
_SONNET_4 = Price(input=3.0, output=15.0, cache_write=3.75, cache_read=0.30)

PRICES: dict[str, Price] = {
    "claude-sonnet-5-5": Price(input=2.0, output=10.0, cache_write=2.50, cache_read=0.10),  # cache read cut 2026-10-07
    "claude-sonnet-5": Price(input=2.0, output=10.0, cache_write=2.50, cache_read=0.20),
    "claude-haiku-5-5": Price(input=0.10, output=0.50, cache_write=0.125, cache_read=0.01),  # prompts <= 100k tokens
    "claude-haiku-4-5": Price(input=1.0, output=5.0, cache_write=1.25, cache_read=0.10),
    "claude-opus-5": _OPUS_4_5,
    "claude-opus-4-8": _OPUS_4_5,
    "claude-opus-4-7": _OPUS_4_5,
    "claude-opus-4-6": _OPUS_4_5,
    "claude-opus-4-5": _OPUS_4_5,
    "claude-sonnet-4-5": _SONNET_4,
}


def price_for(model: str) -> Price | None:
    """The price of `model`: its Anthropic id, a dated id, or a Bedrock id ('anthropic.claude-…-v1:0')."""
    name = model.rsplit(".", 1)[-1] if model.count(".") else model  # bedrock: [region.]anthropic.claude-…
    name = name.split(":", 1)[0].removesuffix("-v1").removesuffix("-v2")
    candidates = sorted((key for key in PRICES if name == key or name.startswith(key + "-")), key=len, reverse=True)
    return PRICES[candidates[0]] if candidates else None


def cost_cents(model: str, usage: Usage, *, batch: bool) -> float | None:
    """What `usage` costs on `model`, in US cents, or None for a model without a price."""
    price = price_for(model)
    if price is None:
        return None
    dollars = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_tokens * price.cache_write
        + usage.cache_read_tokens * price.cache_read
    ) / 1_000_000
    return dollars * 100 * (BATCH_DISCOUNT if batch else 1.0)
