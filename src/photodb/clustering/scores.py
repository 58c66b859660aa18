"""How well a grouping of faces matches their true identities: pairwise precision, recall and F1,
B-cubed F1, and the wrong pairs (faces of different identities put together). Benchmarks and
tests score clusters and persons with it."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupingScores:
    precision: float
    recall: float
    f1: float
    bcubed_f1: float
    wrong_pairs: int

    def as_dict(self) -> dict[str, float]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "bcubed_f1": round(self.bcubed_f1, 4),
            "wrong_pairs": self.wrong_pairs,
        }


def _codes(labels: Sequence[Hashable] | np.ndarray) -> np.ndarray:
    _, codes = np.unique(np.asarray([repr(label) for label in labels]), return_inverse=True)
    return codes.astype(np.int64)


def _pairs(counts: np.ndarray) -> float:
    return float((counts.astype(np.float64) * (counts - 1) / 2).sum())


def grouping_scores(truth: Sequence[Hashable] | np.ndarray, groups: Sequence[Hashable | None]) -> GroupingScores:
    """Scores of `groups` (one label per face; None: the face is alone) against `truth`."""
    if len(truth) != len(groups):
        raise ValueError("one group label per face")
    alone = [("alone", i) if g is None else ("group", g) for i, g in enumerate(groups)]
    t, p = _codes(list(truth)), _codes(alone)
    if t.size == 0:
        return GroupingScores(1.0, 1.0, 1.0, 1.0, 0)
    joint_codes = t * (p.max() + 1) + p
    _, joint_index, joint = np.unique(joint_codes, return_inverse=True, return_counts=True)
    true_counts, predicted_counts = np.bincount(t), np.bincount(p)
    together = _pairs(joint)
    predicted_pairs, true_pairs = _pairs(predicted_counts), _pairs(true_counts)
    precision = together / predicted_pairs if predicted_pairs else 1.0
    recall = together / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    per_face = joint[joint_index].astype(np.float64)
    b_precision = float((per_face / predicted_counts[p]).mean())
    b_recall = float((per_face / true_counts[t]).mean())
    bcubed = 2 * b_precision * b_recall / (b_precision + b_recall) if b_precision + b_recall else 0.0
    return GroupingScores(precision, recall, f1, bcubed, int(predicted_pairs - together))
