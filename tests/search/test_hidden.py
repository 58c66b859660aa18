"""Hidden persons and clusters are not searched by who they are, and results do not name them; their
photos are still found by every other filter (tests/search/library.py: Grace's faces are 101 in
cluster 10 and 103 by her own person_id; Alan's are 102 by his own id and 104 in cluster 11)."""

from __future__ import annotations

import pytest

from photodb.people import identity
from photodb.search.service import SearchError, SearchRequest, search
from tests.search.library import ALAN, GRACE, build_library


@pytest.fixture
def library(db):
    build_library(db)
    return db


def named(results) -> dict[int, set[str | None]]:
    return {r.photo_id: {p.name for p in r.persons} for r in results}


def test_a_hidden_person_is_not_searched_by_name_nor_named_in_results(library, settings):
    identity.hide_person(library, GRACE, by="test")
    with pytest.raises(SearchError, match="'Grace' is hidden"):
        search(library, settings, SearchRequest(persons=("Grace",)))
    results = search(library, settings, SearchRequest(year=2019))
    assert named(results) == {1: {"Alan Turing"}, 2: set()}  # both photos found, Grace named in neither


def test_a_hidden_cluster_hides_its_faces_not_the_persons_other_faces(library, settings):
    identity.hide_cluster(library, 11, by="test")
    assert [r.photo_id for r in search(library, settings, SearchRequest(persons=("Alan",)))] == [1]
    with pytest.raises(SearchError, match="cluster 11 is hidden"):
        search(library, settings, SearchRequest(clusters=(11,)))
    assert named(search(library, settings, SearchRequest(tags=("dog",)))) == {3: set()}


def test_a_cluster_of_a_hidden_person_is_not_searched_by_id(library, settings):
    identity.hide_person(library, ALAN, by="test")
    with pytest.raises(SearchError, match="cluster 11 is hidden"):
        search(library, settings, SearchRequest(clusters=(11,)))


def test_like_face_leaves_out_hidden_faces_and_refuses_to_start_from_one(library, settings):
    identity.hide_cluster(library, 11, by="test")
    assert [r.photo_id for r in search(library, settings, SearchRequest(like_face=101))] == [2, 1, 4]
    with pytest.raises(SearchError, match="face 104 is of a hidden person or cluster"):
        search(library, settings, SearchRequest(like_face=104))


def test_shown_again_they_are_searched_again(library, settings):
    identity.hide_person(library, GRACE, by="test")
    identity.hide_person(library, GRACE, by="test", hidden=False)
    assert [r.photo_id for r in search(library, settings, SearchRequest(persons=("Grace",)))] == [2, 1]
