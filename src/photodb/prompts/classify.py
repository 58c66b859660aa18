"""Zero-shot classification of CLIP embeddings against a category's label matrix.

Scores are CLIP's: cosine similarity times the logit scale (100 for the published models),
softmax over the category's labels. `single` keeps the top label when its probability reaches
the category's min_confidence; `multi` keeps every label that reaches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from photodb.database.prompt_repository import CategoryEmbeddings

#: exp(logit_scale) of the published CLIP / MobileCLIP models.
CLIP_LOGIT_SCALE = 100.0


@dataclass(frozen=True)
class Tag:
    category: str
    label: str
    confidence: float


@dataclass(frozen=True)
class CategoryScores:
    """One embedding against one category: raw similarities, probabilities and the chosen tags."""

    category: str
    labels: tuple[str, ...]
    similarities: np.ndarray
    probabilities: np.ndarray
    chosen: tuple[Tag, ...]

    def as_json(self) -> dict[str, object]:
        pairs = zip(self.labels, self.similarities, self.probabilities, strict=True)
        return {
            "scores": {
                label: {"similarity": round(float(s), 5), "probability": round(float(p), 5)} for label, s, p in pairs
            },
            "chosen": [tag.label for tag in self.chosen],
        }


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def choose(category: CategoryEmbeddings, probabilities: np.ndarray) -> tuple[Tag, ...]:
    """The tags a category's selection mode and threshold keep, best first."""
    order = np.argsort(-probabilities, kind="stable")
    if category.selection_mode == "single":
        order = order[:1]
    return tuple(
        Tag(category.name, category.labels[i], float(probabilities[i]))
        for i in order
        if probabilities[i] >= category.min_confidence
    )


def classify(
    embeddings: np.ndarray, categories: Sequence[CategoryEmbeddings], logit_scale: float = CLIP_LOGIT_SCALE
) -> list[list[CategoryScores]]:
    """For each row of `embeddings` (n, dim; unit length), its scores in every category."""
    embeddings = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
    results: list[list[CategoryScores]] = [[] for _ in range(embeddings.shape[0])]
    for category in categories:
        similarities = embeddings @ category.matrix.T
        probabilities = softmax(logit_scale * similarities)
        for row, (sims, probs) in enumerate(zip(similarities, probabilities, strict=True)):
            results[row].append(CategoryScores(category.name, category.labels, sims, probs, choose(category, probs)))
    return results
