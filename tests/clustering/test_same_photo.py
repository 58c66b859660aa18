"""Bootstrap: two faces of one photo are different people, however alike they look."""

from __future__ import annotations

import numpy as np

from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.synthetic import make_faces
from tests.clustering.conftest import clusters_of, insert


def twins(rng: np.random.Generator, count: int) -> np.ndarray:
    """Faces of two look-alike people (centres at cosine 0.97): HDBSCAN cannot tell them apart."""
    a = rng.standard_normal(512)
    a /= np.linalg.norm(a)
    other = rng.standard_normal(512)
    other -= (other @ a) * a
    b = 0.97 * a + np.sqrt(1 - 0.97**2) * other / np.linalg.norm(other)
    centres = np.repeat(np.vstack([a, b]), count, axis=0)
    noise = rng.standard_normal(centres.shape)
    noise -= (noise * centres).sum(1, keepdims=True) * centres
    faces = 0.9 * centres + np.sqrt(1 - 0.9**2) * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    return faces.astype(np.float32)


def test_two_lookalikes_in_one_photo_end_in_different_clusters(db):
    rng = np.random.default_rng(21)
    background = make_faces(400, 20, seed=21).embeddings
    pair = twins(rng, 8)  # rows 0-7 one person, 8-15 the other
    ids = insert(db, np.vstack([pair, background]))
    first, second = ids[0], ids[8]
    with db.connection() as conn:  # the two look-alikes were photographed together
        conn.execute(
            """UPDATE person_detection SET photo_id = (SELECT photo_id FROM person_detection WHERE id = %s)
               WHERE id = %s""",
            (first, second),
        )
    (report,) = bootstrap(db)
    got = clusters_of(db, ids)
    twin_clusters = [got[i] for i in ids[:16]]
    shared = max(set(twin_clusters) - {None}, key=twin_clusters.count)
    # without the photo, the sixteen faces form one cluster; with it, the two faces of the photo part:
    # the one nearer the cluster's centre stays, the other goes elsewhere (here: noise)
    assert got[first] != got[second] and shared in (got[first], got[second])
    assert twin_clusters.count(shared) == 15
    assert report.constrained_faces >= 1


def test_without_a_shared_photo_the_lookalikes_stay_together(db):
    rng = np.random.default_rng(21)
    background = make_faces(400, 20, seed=21).embeddings
    ids = insert(db, np.vstack([twins(rng, 8), background]))
    bootstrap(db)
    got = clusters_of(db, ids)
    assert got[ids[0]] is not None and got[ids[0]] == got[ids[8]]  # the case above is the photo's doing
