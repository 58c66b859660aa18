"""The one table of face distances: per embedding model, the largest cosine distance each grouping
rule accepts. Every rule reads it through `face_distance` (embeddings of two models are never
compared, and each model's geometry differs: dlib's strangers are closer than w600k_mbf's
same-person pairs).

Rules:
- ``assign``: a face and a cluster's centroid (tier 2 of incremental assignment, the bootstrap's
  member check);
- ``merge``: two faces of two clusters that merge-similar may join (maintenance/similar.py: most
  face pairs across must be within it, not only the centroids);
- ``associate``: two cluster centroids that auto-association may give one person (complete linkage);
- ``pair``: two unassigned faces that may start a cluster together.

Values are measured on labelled faces by bench/face_distances.py, the same way for every packaged
embedder (how: its docstring): each rule's distance is where different people's pairs of what it
compares reach a false match rate (pair 1e-4, the others 1e-3). dlib's merge, associate and pair
are those measurements. Still to be replaced by it: every ``assign`` (the bootstrap and tier 2
read it; measured for dlib 0.060, against 0.10 here), and w600k_mbf's and SFace's merge and pair:
merge is for now their assign, midway between the same-person 5th percentile and the
different-people maximum of face pairs of the 152 labelled faces of the model notes, and pair a
little stricter (README, Models). ArcFace w600k_r50 is not packaged (downloaded), so not measured
here: its ``assign`` and ``associate`` are CLUSTERING_THRESHOLD and PERSON_ASSOCIATION_THRESHOLD,
its ``merge`` and ``pair`` those of w600k_mbf, the same family and training set, whose stronger
sibling it is. A model without an entry is treated as w600k_r50.

Settings override entries (README, Configuration): FACE_DISTANCES any rule of any model; the older
CLUSTERING_THRESHOLDS, CLUSTERING_THRESHOLD_DLIB and CLUSTERING_THRESHOLD (``assign``),
PERSON_ASSOCIATION_THRESHOLDS and PERSON_ASSOCIATION_THRESHOLD (``associate``) keep their meaning.
Keys are a full model name ("arcface:w600k_mbf") or a family ("sface"); the name wins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

if TYPE_CHECKING:
    from photodb.config import Settings

Rule = Literal["assign", "merge", "associate", "pair"]
RULES: tuple[Rule, ...] = get_args(Rule)

#: The share of face pairs across two clusters that must be within the `merge` distance before the
#: clusters may become one (merge-similar) or one person (auto-association): a centroid averages
#: its faces, so the centroids of two look-alikes' spread clusters come closer than their faces.
MIN_LINKED_SHARE = 0.8

#: The model whose row serves models without one.
DEFAULT_MODEL = "arcface:w600k_r50"

#: Measured rows (bench/face_distances.py); w600k_r50's assign/associate come from settings.
MEASURED: dict[str, dict[Rule, float]] = {
    DEFAULT_MODEL: {"merge": 0.62, "pair": 0.55},
    "arcface:w600k_mbf": {"assign": 0.62, "merge": 0.62, "associate": 0.60, "pair": 0.55},
    "sface": {"assign": 0.53, "merge": 0.53, "associate": 0.53, "pair": 0.50},
    "dlib": {"assign": 0.10, "merge": 0.072, "associate": 0.049, "pair": 0.056},
}


def _keys(embedding_model: str) -> tuple[str, str]:
    return embedding_model, embedding_model.split(":", 1)[0]


def _lookup(table: dict[str, float], embedding_model: str) -> float | None:
    for key in _keys(embedding_model):
        if key in table:
            return table[key]
    return None


def face_distance(settings: Settings, embedding_model: str, rule: Rule) -> float:
    """The largest cosine distance `rule` accepts between embeddings of `embedding_model`."""
    overrides = {model: row[rule] for model, row in settings.face_distances.items() if rule in row}
    legacy: dict[str, float] = {}
    if rule == "assign":
        dlib = {} if settings.clustering_threshold_dlib is None else {"dlib": settings.clustering_threshold_dlib}
        legacy = {**dlib, **settings.clustering_thresholds}
    elif rule == "associate":
        legacy = dict(settings.person_association_thresholds)
    for table in (overrides, legacy):
        found = _lookup(table, embedding_model)
        if found is not None:
            return found
    measured = {model: row[rule] for model, row in MEASURED.items() if rule in row}
    found = _lookup(measured, embedding_model)
    if found is not None:
        return found
    if rule == "assign":
        return settings.clustering_threshold
    if rule == "associate":
        return settings.person_association_threshold
    return MEASURED[DEFAULT_MODEL][rule]


def linked_share(first: np.ndarray, second: np.ndarray, distance: float) -> float:
    """The share of face pairs across two sets of unit embeddings within `distance` (cosine)."""
    if not len(first) or not len(second):
        return 0.0
    return float(np.mean(first @ second.T >= 1.0 - distance))


def faces_linked(first: np.ndarray, second: np.ndarray, distance: float) -> bool:
    """Whether two clusters' faces (unit embeddings) are close enough to be one person."""
    return linked_share(first, second, distance) >= MIN_LINKED_SHARE
