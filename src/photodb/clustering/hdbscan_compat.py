"""The hdbscan internals photodb builds on, behind one version check.

The bootstrap feeds its own minimum spanning tree to hdbscan's single-linkage, condensing and
selection code, and tier 1 uses the neighbour-and-lambda part of `approximate_predict`'s per-point
step (its tree walk is clustering.tree_step's, checked against hdbscan's in the tests): none of these
are public API, so a release that is not known to keep them is refused with one clear error
instead of failing somewhere inside them.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: hdbscan releases whose internals below were checked (the one pinned in constraints.txt).
SUPPORTED_VERSIONS = ("0.8.44",)


class UnsupportedHdbscan(RuntimeError):
    """The installed hdbscan is not a release whose internals photodb was checked against."""


@dataclass(frozen=True)
class Internals:
    single_linkage: Callable[..., Any]  # sorted MST edges -> single-linkage tree
    tree_to_labels: Callable[..., Any]  # single-linkage tree -> labels, probabilities, ..., condensed tree
    outlier_scores: Callable[..., Any]  # condensed tree -> GLOSH outlier score per point
    find_neighbor_and_lambda: Callable[..., Any]  # approximate_predict_scores' per-point step
    group_by_parent: Callable[..., Any]  # condensed tree -> ({parent: max lambda}, {parent: rows})


def installed_version() -> str:
    return importlib.metadata.version("hdbscan")


@functools.cache
def internals() -> Internals:
    version = installed_version()
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedHdbscan(
            f"hdbscan {version} is not supported: photodb uses internals checked against "
            f"{', '.join(SUPPORTED_VERSIONS)}; install the version pinned in constraints.txt"
        )
    from hdbscan._hdbscan_linkage import label
    from hdbscan._hdbscan_tree import outlier_scores
    from hdbscan.hdbscan_ import _tree_to_labels
    from hdbscan.prediction import (
        _find_neighbor_and_lambda,
        _group_by_parent,
    )

    return Internals(
        label,
        _tree_to_labels,
        outlier_scores,
        _find_neighbor_and_lambda,
        _group_by_parent,
    )
