"""What a bootstrap run stores for tier 1, as plain arrays: nothing executable is read back.

A run's `clusterer_state` is a numpy `.npz` of the reduced points, their core distances and
labels, the condensed tree as four columns and the tree node of each label; `reducer_state` is
the PCA (mean, components, scale). Both are read with `allow_pickle=False`, only as uncompressed
archives (no zip bombs) and only after every array's type and shape is checked, so a pickle from
an older photodb, a damaged blob or a crafted one is refused with `RunStateError` before use.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Written into every state; a blob without it (an older photodb's pickle) is not read.
FORMAT = "photodb-hdbscan-run/1"
REDUCER_FORMAT = "photodb-pca/1"
_ZIP_MAGIC = b"PK\x03\x04"
#: The condensed tree's columns, in hdbscan's own record layout.
TREE_DTYPE = np.dtype([("parent", "<i8"), ("child", "<i8"), ("lambda_val", "<f8"), ("child_size", "<i8")])


class RunStateError(ValueError):
    """A stored run tier 1 cannot use: another format, another model or shape, or a damaged blob."""


def _read(data: bytes, kinds: dict[str, str], expected_format: str) -> dict[str, np.ndarray]:
    """The arrays of an uncompressed .npz, each of the numpy kind asked for ('f', 'i', 'U')."""
    if not data.startswith(_ZIP_MAGIC):
        raise RunStateError("not a stored run of the current format (an older photodb wrote it, or it is damaged)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > len(data):
                raise RunStateError("stored run holds compressed members; refusing to expand them")
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            missing = {"format", *kinds} - set(archive.files)
            if missing:
                raise RunStateError(f"stored run lacks {', '.join(sorted(missing))}")
            arrays = {name: archive[name] for name in ("format", *kinds)}
    except RunStateError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise RunStateError(f"stored run is unreadable: {error}") from error
    if arrays["format"].dtype.kind != "U" or str(arrays["format"][()]) != expected_format:
        raise RunStateError(f"stored run format {arrays['format'][()]!s} is not {expected_format}")
    for name, kind in kinds.items():
        if arrays[name].dtype.kind != kind:
            raise RunStateError(f"stored run's {name} has type {arrays[name].dtype}, expected kind {kind!r}")
    return arrays


def _pack(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@dataclass(frozen=True)
class Reducer:
    """PCA as plain arrays: stored with the run and applied to every later face."""

    mean: np.ndarray  # (input width,)
    components: np.ndarray  # (dims, input width)
    scale: float

    @property
    def dims(self) -> int:
        return int(self.components.shape[0])

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.shape[-1] != self.mean.shape[0]:
            raise RunStateError(f"faces have {embeddings.shape[-1]} dimensions, the run's PCA {self.mean.shape[0]}")
        reduced = (embeddings - self.mean) @ self.components.T
        return (reduced * self.scale).astype(np.float32)

    def to_bytes(self) -> bytes:
        return _pack(format=REDUCER_FORMAT, mean=self.mean, components=self.components, scale=np.float64(self.scale))

    @classmethod
    def from_bytes(cls, data: bytes) -> Reducer:
        arrays = _read(data, {"mean": "f", "components": "f", "scale": "f"}, REDUCER_FORMAT)
        mean, components, scale = arrays["mean"], arrays["components"], arrays["scale"]
        if mean.ndim != 1 or components.ndim != 2 or components.shape[1] != mean.shape[0] or scale.ndim != 0:
            raise RunStateError("stored PCA has inconsistent shapes")
        if not (np.isfinite(mean).all() and np.isfinite(components).all() and np.isfinite(scale)):
            raise RunStateError("stored PCA holds non-finite values")
        return cls(mean.astype(np.float32), components.astype(np.float32), float(scale))

    @classmethod
    def fit(cls, embeddings: np.ndarray, dims: int, seed: int = 0) -> Reducer:
        from sklearn.decomposition import PCA  # only a bootstrap fits one: ~1 s of imports (scipy)

        dims = max(1, min(dims, embeddings.shape[0] - 1, embeddings.shape[1]))
        pca = PCA(n_components=dims, svd_solver="randomized", random_state=seed).fit(embeddings)
        retained = float(pca.explained_variance_ratio_.sum())
        scale = 1.0 / np.sqrt(retained) if retained > 0 else 1.0
        return cls(pca.mean_.astype(np.float32), pca.components_.astype(np.float32), scale)


@dataclass(frozen=True)
class RunState:
    """Everything tier 1 needs of a fitted run, indexed like the run's faces."""

    embedding_model: str
    points: np.ndarray  # (n, dims) float32: the faces after the run's PCA
    core_distances: np.ndarray  # (n,) float64
    labels: np.ndarray  # (n,) int64, -1 = noise
    tree: np.ndarray  # the condensed tree, TREE_DTYPE records
    selected: np.ndarray  # (clusters,) int64: the tree node of each label, ascending
    min_samples: int

    def to_bytes(self) -> bytes:
        return _pack(
            format=FORMAT,
            embedding_model=self.embedding_model,
            points=self.points,
            core_distances=self.core_distances,
            labels=self.labels,
            tree_parent=self.tree["parent"],
            tree_child=self.tree["child"],
            tree_lambda=self.tree["lambda_val"],
            tree_size=self.tree["child_size"],
            selected=self.selected,
            min_samples=np.int64(self.min_samples),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> RunState:
        kinds = {"embedding_model": "U", "points": "f", "core_distances": "f", "labels": "i", "selected": "i"}
        kinds |= {"tree_parent": "i", "tree_child": "i", "tree_lambda": "f", "tree_size": "i", "min_samples": "i"}
        a = _read(data, kinds, FORMAT)
        points, n = a["points"], a["points"].shape[0] if a["points"].ndim == 2 else -1
        columns = [a["tree_parent"], a["tree_child"], a["tree_lambda"], a["tree_size"]]
        shapes_ok = (
            n > 0
            and a["core_distances"].shape == (n,)
            and a["labels"].shape == (n,)
            and all(c.ndim == 1 and c.shape == columns[0].shape for c in columns)
            and a["selected"].ndim == 1
            and a["min_samples"].ndim == 0
            and int(a["min_samples"]) >= 1
        )
        if not shapes_ok:
            raise RunStateError("stored run has inconsistent shapes")
        if not (np.isfinite(points).all() and not np.isnan(a["core_distances"]).any()):
            raise RunStateError("stored run holds non-finite points")
        if a["labels"].size and not (a["labels"].min() >= -1 and a["labels"].max() < a["selected"].size):
            raise RunStateError("stored run's labels do not match its clusters")
        if columns[1].size and (columns[1].min() < 0 or np.isnan(columns[2]).any()):
            raise RunStateError("stored run's condensed tree is damaged")
        tree = np.empty(columns[0].size, TREE_DTYPE)
        for name, column in zip(TREE_DTYPE.names or (), columns, strict=True):
            tree[name] = column
        return cls(
            str(a["embedding_model"][()]),
            points.astype(np.float32),
            a["core_distances"].astype(np.float64),
            a["labels"].astype(np.int64),
            tree,
            a["selected"].astype(np.int64),
            int(a["min_samples"]),
        )
