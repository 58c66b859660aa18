"""A stored run tier 1 cannot use (an older photodb's pickle, a damaged or crafted blob, another
model or shape, an unsupported hdbscan) turns tier 1 off for that run with one warning; its faces
are still assigned by tier 2 or left unassigned, never failed, and nothing in the blob runs."""

from __future__ import annotations

import io
import logging
import pickle
from collections.abc import Callable
from pathlib import Path

import hdbscan
import numpy as np
import pytest

from photodb.clustering import hdbscan_compat, incremental
from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.incremental import assign_new_faces
from photodb.clustering.run_state import Reducer, RunState
from photodb.clustering.synthetic import make_faces
from tests.clustering.conftest import insert


class Plant:
    """Unpickling this creates a file: the proof that a blob was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.path), "w")


def stored(db) -> tuple[RunState, Reducer]:
    with db.connection() as conn:
        sql = "SELECT clusterer_state, reducer_state FROM hdbscan_run WHERE is_active"
        state, reducer = conn.execute(sql).fetchone()
    return RunState.from_bytes(bytes(state)), Reducer.from_bytes(bytes(reducer))


def npz(**arrays: object) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def old_pickle(db, marker: Path) -> tuple[bytes, bytes]:
    _, reducer = stored(db)  # the older format: a pickled clusterer, a PCA archive without a format
    old_reducer = npz(mean=reducer.mean, components=reducer.components, scale=np.float64(reducer.scale))
    return pickle.dumps(hdbscan.HDBSCAN(min_cluster_size=3)), old_reducer


def malicious_pickle(db, marker: Path) -> tuple[bytes, bytes]:
    return pickle.dumps(Plant(marker)), stored(db)[1].to_bytes()


def malicious_member(db, marker: Path) -> tuple[bytes, bytes]:
    state, reducer = stored(db)
    fields = {
        "format": "photodb-hdbscan-run/1",
        "embedding_model": state.embedding_model,
        "points": np.array([Plant(marker)], dtype=object),
        "core_distances": state.core_distances,
        "labels": state.labels,
        "tree_parent": state.tree["parent"],
        "tree_child": state.tree["child"],
        "tree_lambda": state.tree["lambda_val"],
        "tree_size": state.tree["child_size"],
        "selected": state.selected,
        "min_samples": np.int64(state.min_samples),
    }
    return npz(**fields), reducer.to_bytes()


def truncated(db, marker: Path) -> tuple[bytes, bytes]:
    state, reducer = stored(db)
    data = state.to_bytes()
    return data[: len(data) // 2], reducer.to_bytes()


def garbage(db, marker: Path) -> tuple[bytes, bytes]:
    return b"PK\x03\x04" + np.random.default_rng(0).bytes(4000), stored(db)[1].to_bytes()


def other_model(db, marker: Path) -> tuple[bytes, bytes]:
    state, reducer = stored(db)
    return RunState(**{**state.__dict__, "embedding_model": "dlib"}).to_bytes(), reducer.to_bytes()


def other_dims(db, marker: Path) -> tuple[bytes, bytes]:
    state, reducer = stored(db)
    return state.to_bytes(), Reducer(reducer.mean, reducer.components[:48], reducer.scale).to_bytes()


def other_width(db, marker: Path) -> tuple[bytes, bytes]:
    state, reducer = stored(db)  # loads, but faces of 512 dimensions do not fit a 128-d PCA
    return state.to_bytes(), Reducer(reducer.mean[:128], reducer.components[:, :128], reducer.scale).to_bytes()


BREAKAGES: dict[str, Callable[..., tuple[bytes, bytes]]] = {
    "older photodb's pickle": old_pickle,
    "malicious pickle": malicious_pickle,
    "malicious pickle inside the archive": malicious_member,
    "truncated blob": truncated,
    "garbage after a zip header": garbage,
    "another embedding model": other_model,
    "PCA of other dimensions": other_dims,
    "PCA of another input width": other_width,
    "damaged label map": lambda db, marker: (stored(db)[0].to_bytes(), stored(db)[1].to_bytes()),
}


@pytest.fixture
def new_faces(db) -> list[int]:
    faces = make_faces(320, 16, seed=8)
    insert(db, faces.embeddings[:280])
    bootstrap(db)
    incremental._models.clear()
    return insert(db, faces.embeddings[280:])


def assign_twice(db, ids: list[int], caplog) -> dict[str, int]:
    """Two batches, as two photos would be: the warning must come once, outcomes add up."""
    with caplog.at_level(logging.WARNING, logger="photodb.clustering.incremental"):
        first = assign_new_faces(db, ids[: len(ids) // 2], force=True)
        second = assign_new_faces(db, ids[len(ids) // 2 :], force=True)
    return dict(first.outcomes + second.outcomes)


def tier1_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "tier 1 is off" in r.getMessage()]


def test_a_working_run_uses_tier_1(db, new_faces, caplog):
    outcomes = assign_twice(db, new_faces, caplog)
    assert outcomes.get("tier1", 0) > 0 and not tier1_warnings(caplog)


@pytest.mark.parametrize("breakage", list(BREAKAGES), ids=list(BREAKAGES))
def test_an_unusable_run_turns_tier_1_off_once_and_assigns_by_tier_2(db, new_faces, caplog, tmp_path, breakage):
    marker = tmp_path / "executed"
    state, reducer = BREAKAGES[breakage](db, marker)
    with db.connection() as conn:
        conn.execute(
            "UPDATE hdbscan_run SET clusterer_state = %s, reducer_state = %s WHERE is_active", (state, reducer)
        )
        if breakage == "damaged label map":
            conn.execute("""UPDATE hdbscan_run SET label_to_cluster_id = '{"0": "x"}' WHERE is_active""")
    outcomes = assign_twice(db, new_faces, caplog)
    assert not marker.exists()
    assert "tier1" not in outcomes and outcomes.get("tier2", 0) > 0
    assert sum(outcomes.values()) == len(new_faces)
    assert set(outcomes) <= {"tier2", "unassigned", "pending"}
    (warning,) = tier1_warnings(caplog)
    assert "tier 1 is off for this run" in warning


def test_an_unsupported_hdbscan_turns_tier_1_off_and_stops_a_bootstrap(db, new_faces, caplog, monkeypatch):
    monkeypatch.setattr(hdbscan_compat, "installed_version", lambda: "0.9.99")
    hdbscan_compat.internals.cache_clear()
    try:
        outcomes = assign_twice(db, new_faces, caplog)
        assert "tier1" not in outcomes and outcomes.get("tier2", 0) > 0
        (warning,) = tier1_warnings(caplog)
        assert "hdbscan 0.9.99 is not supported" in warning
        with pytest.raises(hdbscan_compat.UnsupportedHdbscan, match=r"install the version pinned in constraints.txt"):
            bootstrap(db)
    finally:
        hdbscan_compat.internals.cache_clear()
