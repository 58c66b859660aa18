"""Face-body matching on hand-made layouts, and box filtering."""

from __future__ import annotations

from photodb.ml.boxes import Box, Detections, match_faces_to_bodies


def box(x: float, y: float, w: float, h: float, conf: float = 0.9) -> Box:
    return Box(x, y, w, h, conf)


def as_set(pairs: list[tuple[int | None, int | None]]) -> set[tuple[int | None, int | None]]:
    assert len(pairs) == len(set(pairs))
    return set(pairs)


def test_each_face_goes_to_the_body_whose_upper_part_holds_it():
    bodies = [box(0, 0, 100, 300), box(200, 0, 100, 300)]
    faces = [box(230, 10, 40, 40), box(30, 10, 40, 40)]
    assert as_set(match_faces_to_bodies(faces, bodies)) == {(0, 1), (1, 0)}


def test_overlapping_people_each_keep_their_own_face():
    # Body 0 (front, large) also covers the face of the person standing behind it (body 1).
    bodies = [box(0, 50, 300, 400), box(180, 0, 120, 300)]
    faces = [box(100, 60, 60, 60), box(215, 10, 50, 50)]
    assert as_set(match_faces_to_bodies(faces, bodies)) == {(0, 0), (1, 1)}


def test_a_face_outside_every_body_is_face_only_and_the_body_is_body_only():
    bodies = [box(0, 0, 100, 300)]
    faces = [box(400, 400, 50, 50)]
    assert as_set(match_faces_to_bodies(faces, bodies)) == {(0, None), (None, 0)}


def test_two_faces_in_one_body_give_it_to_one_face_only():
    bodies = [box(0, 0, 200, 400)]
    # Face 1 sits in the upper part and near the centre line; face 0 is low (a face on a T-shirt).
    faces = [box(20, 250, 40, 40), box(80, 20, 40, 40)]
    assert as_set(match_faces_to_bodies(faces, bodies)) == {(1, 0), (0, None)}


def test_a_face_barely_touching_a_body_does_not_belong_to_it():
    bodies = [box(0, 0, 100, 300)]
    faces = [box(80, 10, 60, 60)]  # a third of it inside
    assert as_set(match_faces_to_bodies(faces, bodies)) == {(0, None), (None, 0)}


def test_no_faces_or_no_bodies():
    assert match_faces_to_bodies([], []) == []
    assert match_faces_to_bodies([box(0, 0, 1, 1)], []) == [(0, None)]
    assert match_faces_to_bodies([], [box(0, 0, 1, 1)]) == [(None, 0)]


def test_filtering_drops_low_confidence_and_clips_to_the_image():
    found = Detections(
        [box(-10, -10, 50, 50, 0.9), box(0, 0, 5, 5, 0.4)], [box(90, 90, 50, 50, 0.7), box(200, 0, 9, 9)]
    )
    kept = found.filtered(0.5, 100, 100)
    assert kept.faces == [box(0, 0, 40, 40, 0.9)]
    assert kept.bodies == [box(90, 90, 10, 10, 0.7)]
