"""Turning labels into vectors: each label's texts encoded, averaged and re-normalised (ensembling)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from photodb.database.prompt_repository import PromptRepository, PromptToEmbed
from photodb.prompts import default_prompts

log = logging.getLogger(__name__)

#: Texts per text-encoder call: large enough to batch, small enough to keep memory flat.
TEXT_BATCH = 256


class TextEncoder(Protocol):
    """What prompt embedding needs of a CLIP model (photodb.ml.clip.ClipModel provides it)."""

    @property
    def model_name(self) -> str: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


def ensemble(vectors: np.ndarray) -> np.ndarray:
    """The mean direction of unit text vectors, as a unit vector (CLIP's prompt ensembling)."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    mean = unit.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def embed_prompts(
    prompts: Sequence[PromptToEmbed], encoder: TextEncoder, progress: Callable[[int], None] | None = None
) -> list[tuple[PromptToEmbed, np.ndarray]]:
    """Each prompt with its ensembled embedding; texts of several prompts share encoder calls."""
    out: list[tuple[PromptToEmbed, np.ndarray]] = []
    chunk: list[PromptToEmbed] = []

    def flush() -> None:
        texts = [text for prompt in chunk for text in prompt.texts]
        vectors = np.asarray(encoder.encode_texts(texts), dtype=np.float32)
        start = 0
        for prompt in chunk:
            out.append((prompt, ensemble(vectors[start : start + len(prompt.texts)])))
            start += len(prompt.texts)
        if progress is not None:
            progress(len(chunk))
        chunk.clear()

    queued = 0
    for prompt in prompts:
        if chunk and queued + len(prompt.texts) > TEXT_BATCH:
            flush()
            queued = 0
        chunk.append(prompt)
        queued += len(prompt.texts)
    if chunk:
        flush()
    return out


def ensure_default_prompts(repository: PromptRepository) -> bool:
    """The shipped prompt set, stored on first use (never over a user's categories); True when stored."""
    return repository.seed_if_empty(default_prompts())


def build_prompt_embeddings(
    repository: PromptRepository,
    encoder: TextEncoder,
    *,
    everything: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Embed the labels that lack a current embedding for the encoder's model (all with `everything`).

    `progress(done, total)` is told after each encoder call. Returns how many labels were embedded."""
    pending = repository.to_embed(encoder.model_name, everything=everything)
    if pending:
        log.info("embedding %d prompt labels with %s", len(pending), encoder.model_name)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, len(pending))

    rows = embed_prompts(pending, encoder, advance)
    repository.store_embeddings(encoder.model_name, rows)
    return len(rows)
