"""Synthetic face embeddings with known identities, for tests and the clustering benchmark.

Real collections cannot be shipped with ground truth, so quality is measured on data built to
look like ArcFace output: unit vectors in 512-d, identities of very different sizes, faces whose
similarity to their identity varies (blur, pose), a few look-alike identities, and noise faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIM = 512


@dataclass(frozen=True)
class SyntheticFaces:
    embeddings: np.ndarray  # (n, 512) float32, L2-normalized
    identities: np.ndarray  # (n,) int64; every noise face has its own negative id

    @property
    def identity_count(self) -> int:
        return int(np.unique(self.identities[self.identities >= 0]).size)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def identity_sizes(total: int, identities: int, rng: np.random.Generator) -> np.ndarray:
    """Many identities with 3-20 faces, about 1% with hundreds: the shape of a family archive."""
    big = max(1, identities // 100)
    small = rng.integers(3, 21, size=identities - big)
    remaining = max(total - int(small.sum()), big * 100)
    weights = rng.dirichlet(np.ones(big) * 2.0)
    large = np.maximum(100, np.round(weights * remaining)).astype(np.int64)
    return np.concatenate([small, large])


def make_faces(
    total: int,
    identities: int,
    *,
    noise_share: float = 0.10,
    lookalike_share: float = 0.05,
    seed: int = 0,
) -> SyntheticFaces:
    """`total` faces: (1 - noise_share) from `identities` identities, the rest unrelated noise.

    A face is r * centre + sqrt(1 - r^2) * (random direction), so its cosine similarity to its
    identity's centre is r. r is drawn per identity (0.62-0.85) and jittered per face (down to
    0.45), which puts same-identity pairs at cosine 0.2-0.8; unrelated pairs sit near 0 +- 0.045,
    and look-alike identities (centres at cosine 0.45) make the two ranges overlap a little.
    """
    rng = np.random.default_rng(seed)
    sizes = identity_sizes(round(total * (1 - noise_share)), identities, rng)
    centres = _unit(rng.standard_normal((identities, DIM)))
    lookalikes = rng.choice(identities, size=int(identities * lookalike_share) * 2, replace=False)
    for a, b in lookalikes.reshape(-1, 2):
        centres[b] = _unit((0.45 * centres[a] + np.sqrt(1 - 0.45**2) * centres[b])[None])[0]
    labels = np.repeat(np.arange(identities), sizes)
    base = rng.uniform(0.62, 0.85, size=identities)[labels]
    r = np.clip(base + rng.normal(0, 0.07, size=labels.size), 0.45, 0.95)
    directions = _unit(rng.standard_normal((labels.size, DIM)))
    directions -= (directions * centres[labels]).sum(1, keepdims=True) * centres[labels]
    faces = r[:, None] * centres[labels] + np.sqrt(1 - r**2)[:, None] * _unit(directions)
    noise_count = max(0, total - labels.size)
    noise = _unit(rng.standard_normal((noise_count, DIM)))
    embeddings = np.vstack([faces, noise]).astype(np.float32)
    truth = np.concatenate([labels, -1 - np.arange(noise_count)])
    order = rng.permutation(truth.size)
    return SyntheticFaces(_unit(embeddings[order]).astype(np.float32), truth[order])


def pairwise_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """F1 over same-identity pairs; predicted noise (-1) counts as singletons, as does true noise."""
    predicted = predicted.copy()
    noise = predicted < 0
    predicted[noise] = predicted.max(initial=0) + 1 + np.arange(int(noise.sum()))
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(predicted, return_inverse=True)
    pair_codes = t.astype(np.int64) * (p.max() + 1) + p
    _, joint = np.unique(pair_codes, return_counts=True)

    def pairs(counts: np.ndarray) -> float:
        return float((counts.astype(np.float64) * (counts - 1) / 2).sum())

    true_positive = pairs(joint)
    predicted_pairs = pairs(np.bincount(p))
    true_pairs = pairs(np.bincount(t))
    if true_positive == 0:
        return 0.0
    precision, recall = true_positive / predicted_pairs, true_positive / true_pairs
    return 2 * precision * recall / (precision + recall)


def add_bursts(
    faces: SyntheticFaces, groups: int, size: int, *, similarity: float = 0.995, seed: int = 0
) -> SyntheticFaces:
    """Burst shots: `groups` faces each repeated `size` times almost unchanged (cosine `similarity`).

    A camera's burst mode or a phone's live photo gives tight duplicate groups, which leave the
    k-NN graph in thousands of separate components; the copies keep the identity of their face.
    """
    rng = np.random.default_rng(seed)
    seeds = rng.choice(faces.identities.size, size=groups, replace=False)
    origin = np.repeat(seeds, size - 1)
    jitter = _unit(rng.standard_normal((origin.size, DIM)))
    base = faces.embeddings[origin].astype(np.float64)
    jitter -= (jitter * base).sum(1, keepdims=True) * base
    copies = similarity * base + np.sqrt(1 - similarity**2) * _unit(jitter)
    embeddings = np.vstack([faces.embeddings, copies.astype(np.float32)])
    truth = np.concatenate([faces.identities, faces.identities[origin]])
    order = rng.permutation(truth.size)
    return SyntheticFaces(_unit(embeddings[order]).astype(np.float32), truth[order])
