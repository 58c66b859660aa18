"""Incremental assignment never puts two faces of one photo, or a cannot-linked pair, in one cluster
(issue 10, §5 and §6), in tier 1 (the stored run's prediction) and in tier 2 (nearest centroids)."""

from __future__ import annotations

import pytest

from photodb.clustering import incremental
from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.incremental import assign_new_faces
from tests.clustering.conftest import clusters_of, insert


def setup_identity(db, faces) -> tuple[int, list[int], int]:
    """Bootstrap 500 faces; return the cluster of the largest identity, three of its held-out faces
    (each in its own photo) and one of its clustered faces."""
    base = insert(db, faces.embeddings[:500])
    bootstrap(db)
    got = clusters_of(db, base)
    held = {}
    for i in range(500, len(faces.identities)):
        held.setdefault(int(faces.identities[i]), []).append(i)
    ident = max((k for k in held if k >= 0), key=lambda k: len(held[k]))
    members = [d for d, k in zip(base, faces.identities[:500], strict=True) if k == ident and got[d] is not None]
    home = max({got[d] for d in members}, key=[got[d] for d in members].count)
    new = insert(db, faces.embeddings[held[ident][:3]])
    return home, new, next(d for d in members if got[d] == home)


def tier2_only(db) -> None:
    with db.connection() as conn:
        conn.execute("UPDATE hdbscan_run SET label_to_cluster_id = '{}'")
    incremental._models.clear()


@pytest.mark.parametrize("tiers", ["tier1", "tier2"])
def test_a_face_never_joins_a_cluster_holding_a_face_of_its_photo(db, faces, tiers):
    home, (first, second, control), _member = setup_identity(db, faces)
    with db.connection() as conn:
        photo = conn.execute("SELECT photo_id FROM person_detection WHERE id = %s", (first,)).fetchone()[0]
        conn.execute("UPDATE person_detection SET photo_id = %s WHERE id = %s", (photo, second))
    if tiers == "tier2":
        tier2_only(db)
    report = assign_new_faces(db, [first, second, control], force=True)
    assert report.cluster_of[first] == home and report.cluster_of[control] == home  # the same person
    assert report.outcomes[tiers] >= 2
    assert report.cluster_of[second] != home  # the next cluster whose ball holds it, or none
    with db.connection() as conn:
        status = conn.execute("SELECT cluster_status FROM person_detection WHERE id = %s", (second,)).fetchone()[0]
    assert report.cluster_of[second] is not None or status in ("unassigned", "pending")


@pytest.mark.parametrize("tiers", ["tier1", "tier2"])
def test_cannot_links_hold_in_incremental_assignment(db, faces, tiers):
    home, (linked, control, _), member = setup_identity(db, faces)
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO cannot_link (detection_id_1, detection_id_2) VALUES (%s, %s)",
            (min(member, linked), max(member, linked)),
        )
    if tiers == "tier2":
        tier2_only(db)
    report = assign_new_faces(db, [linked, control], force=True)
    assert report.cluster_of[control] == home and report.outcomes[tiers] >= 1
    assert report.cluster_of[linked] != home


@pytest.mark.parametrize("tiers", ["tier1", "tier2"])
def test_a_hidden_cluster_takes_no_new_faces(db, faces, tiers):
    home, new, _member = setup_identity(db, faces)
    with db.connection() as conn:
        conn.execute("UPDATE cluster SET hidden = true WHERE id = %s", (home,))
    if tiers == "tier2":
        tier2_only(db)
    report = assign_new_faces(db, new, force=True)
    assert all(report.cluster_of[face] != home for face in new)
    assert clusters_of(db, new) == {face: report.cluster_of[face] for face in new}
