"""What a bootstrap does with HDBSCAN's noise: placed as a new face would be, then paired up."""

from __future__ import annotations

import numpy as np

from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.leftovers import leftover_groups
from photodb.people.association import auto_associate
from tests.clustering.conftest import clusters_of, insert

MBF = "arcface:w600k_mbf"  # its threshold: 0.62


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def around(rng: np.random.Generator, centre: np.ndarray, count: int, distance: float) -> np.ndarray:
    """`count` unit vectors at cosine distance `distance` from `centre`, in random directions."""
    away = rng.normal(size=(count, centre.size))
    away = unit(away - (away @ centre)[:, None] * centre)
    angle = np.arccos(1 - distance)
    return np.cos(angle) * centre + np.sin(angle) * away


def strangers(rng: np.random.Generator) -> np.ndarray:
    """Thirty people of six tight faces each, far from one another."""
    return np.vstack([around(rng, centre, 6, 0.08) for centre in unit(rng.normal(size=(30, 512)))])


def far_member_case() -> tuple[np.ndarray, np.ndarray]:
    """Strangers, a person X of five faces with a look-alike of ten, and one more face of X at ~0.3
    from each of X's five (0.24 from their centre, inside X's ball) that HDBSCAN leaves as noise.
    Returns the embeddings and the cosine distances of the last face to X's five."""
    rng = np.random.default_rng(3)
    background = strangers(rng)
    x = unit(rng.normal(size=512))
    lookalike = around(rng, x, 1, 0.2)[0]
    own, other = around(rng, x, 5, 0.08), around(rng, lookalike, 10, 0.08)
    centre = unit(own.sum(axis=0))
    away = rng.normal(size=512)
    away -= (away @ centre) * centre
    away = unit(away - (away @ lookalike) * lookalike)
    angle = np.arccos(1 - 0.25)
    face = np.cos(angle) * centre - np.sin(angle) * away
    return np.vstack([background, own, other, face[None]]).astype(np.float32), 1 - own @ face


def test_a_face_hdbscan_leaves_as_noise_joins_the_cluster_incremental_assignment_would_give_it(db):
    embeddings, distances = far_member_case()
    assert np.all((distances > 0.26) & (distances < 0.34))
    ids = insert(db, embeddings, MBF)
    own, last = ids[180:185], ids[-1]
    (report,) = bootstrap(db)
    got = clusters_of(db, ids)
    assert len({got[i] for i in own}) == 1 and got[own[0]] is not None
    assert got[last] == got[own[0]]
    assert report.noise_placed >= 1
    with db.connection() as conn:
        status, outlier = conn.execute(
            "SELECT cluster_status, outlier_score FROM person_detection WHERE id = %s", (last,)
        ).fetchone()
        (count,) = conn.execute("SELECT face_count FROM cluster WHERE id = %s", (got[last],)).fetchone()
    assert status == "auto" and outlier is not None and count == 6


def test_two_photos_of_one_person_become_a_cluster_and_a_person_two_faces_of_one_photo_never(db):
    rng = np.random.default_rng(5)
    background = strangers(rng)
    pair = around(rng, unit(rng.normal(size=512)), 2, 0.15)  # two photos of one person: 0.3 apart at most
    same_photo = around(rng, unit(rng.normal(size=512)), 2, 0.15)  # two faces of one photo, as close
    ids = insert(db, np.vstack([background, pair, same_photo]).astype(np.float32), MBF)
    pair_ids, photo_ids = ids[180:182], ids[182:184]
    with db.connection() as conn:
        conn.execute(
            """UPDATE person_detection SET photo_id = (SELECT photo_id FROM person_detection WHERE id = %s)
               WHERE id = %s""",
            (photo_ids[0], photo_ids[1]),
        )
    (report,) = bootstrap(db)
    got = clusters_of(db, ids)
    assert got[pair_ids[0]] is not None and got[pair_ids[0]] == got[pair_ids[1]]
    assert report.leftover_clusters >= 1
    assert got[photo_ids[0]] is None or got[photo_ids[0]] != got[photo_ids[1]]

    auto_associate(db, None)
    with db.connection() as conn:
        (person,) = conn.execute("SELECT person_id FROM cluster WHERE id = %s", (got[pair_ids[0]],)).fetchone()
        (face_count,) = conn.execute("SELECT face_count FROM cluster WHERE id = %s", (got[pair_ids[0]],)).fetchone()
        shared = conn.execute(
            """SELECT count(*) FROM (SELECT photo_id, cluster_id FROM person_detection
               WHERE cluster_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) s"""
        ).fetchone()[0]
    assert person is not None and face_count == 2
    assert shared == 0


def test_leftover_groups_are_complete_linkage_within_the_threshold_and_keep_photos_apart():
    rng = np.random.default_rng(7)
    plane = unit(rng.normal(size=(2, 64)))
    plane[1] = unit(plane[1] - (plane[1] @ plane[0]) * plane[0])
    angle = np.arccos(1 - 0.2)
    # a chain: neighbours 0.2 apart, its ends 0.72 apart; then a tight trio, two of it in one photo
    chain = np.vstack([np.cos(k * angle) * plane[0] + np.sin(k * angle) * plane[1] for k in range(3)])
    trio = around(rng, unit(rng.normal(size=64)), 3, 0.05)
    vectors = np.vstack([chain, trio])
    photos = np.array([1, 2, 3, 4, 4, 5])
    gaps = 1 - chain @ chain.T
    assert gaps[0, 1] < 0.3 and gaps[1, 2] < 0.3 and gaps[0, 2] > 0.5
    groups = [sorted(g) for g in leftover_groups(vectors, photos, 0.3)]
    assert [0, 1, 2] not in groups and len([g for g in groups if set(g) & {0, 1, 2}]) == 1
    trio_groups = [g for g in groups if set(g) & {3, 4, 5}]
    assert all(not {3, 4} <= set(g) for g in groups)
    assert sorted(len(g) for g in trio_groups) == [2]
    assert leftover_groups(vectors, photos, 0.3, cannot=[(3, 5), (4, 5)]) == [
        g for g in leftover_groups(vectors, photos, 0.3) if not set(g) & {3, 4, 5}
    ]
