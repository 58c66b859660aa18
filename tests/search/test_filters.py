"""Every search filter, alone and combined, on the generated library of tests/search/library.py."""

from __future__ import annotations

from datetime import date

import pytest

from photodb.search.service import SearchError, SearchRequest, search
from tests.search.library import ALAN, GRACE, build_library


@pytest.fixture
def library(db):
    build_library(db)
    return db


def ids(db, settings, **request) -> list[int]:
    return [r.photo_id for r in search(db, settings, SearchRequest(**request))]


def found(db, settings, **request) -> set[int]:
    return set(ids(db, settings, **request))


def test_no_filter_lists_every_photo_newest_first_undated_last(library, settings):
    assert ids(library, settings) == [3, 5, 2, 1, 4]
    assert ids(library, settings, sort="oldest") == [1, 2, 5, 3, 4]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"persons": ("Grace",)}, {1, 2}),  # via cluster 10 (photo 1) and her own person_id (photo 2)
        ({"persons": ("alan turing",)}, {1, 3}),  # full name, any case; own person_id and cluster 11
        ({"persons": ("Grace", "Alan")}, {1}),  # together
        ({"persons": ("Grace", "Alan"), "any_person": True}, {1, 2, 3}),
        ({"clusters": (12,)}, {4}),
        ({"clusters": (12,), "persons": ("Grace",), "any_person": True}, {1, 2, 4}),
        ({"persons": ("Ada",)}, set()),  # a person without faces
        ({"start": date(2019, 7, 4), "end": date(2019, 12, 25)}, {1, 2}),  # both ends inclusive
        ({"start": date(2020, 1, 1)}, {3, 5}),
        ({"end": date(2019, 7, 3)}, set()),
        ({"year": 2019}, {1, 2}),
        ({"year": 2019, "month": 12}, {2}),
        ({"month": 7}, {1, 3}),
        ({"on_day": date(2030, 7, 4)}, {1, 3}),
        ({"camera": "iphone"}, {1, 3}),
        ({"camera": "canon eos"}, {2}),
        ({"camera": "apple iphone 8"}, {3}),
        ({"near": (48.8566, 2.3522), "radius_km": 1.0}, {1, 5}),
        ({"near": (48.8566, 2.3522), "radius_km": 0.2}, {1}),
        ({"near": (51.5, -0.12), "radius_km": 5.0}, {2}),
        ({"tags": ("beach",)}, {1, 3}),
        ({"tags": ("beach", "dog")}, {3}),
        ({"face_tags": ("smiling",)}, {1}),
        ({"words": "birthday"}, {1}),
        ({"words": "runs"}, {2, 3}),  # stemming: running, runs
        ({"words": "streets"}, {2}),  # the description's "streets" and the location's "street"
        ({"words": "winter"}, {2}),  # a tag of the analysis
        ({"words": "summer"}, {1}),  # a tag of the analysis
        ({"words": "umbrella"}, {1}),  # an object
        ({"words": "sandy"}, {1}),  # the location
        ({"words": "dog -ball"}, set()),
        ({"words": '"birthday cake"'}, {1}),
        ({"words": "cake or sled"}, {1, 2}),
    ],
)
def test_each_filter_finds_its_known_photos(library, settings, request_, expected):
    assert found(library, settings, **request_) == expected


def test_filters_combine(library, settings):
    combined = {
        "persons": ("Grace",),
        "year": 2019,
        "camera": "iphone",
        "tags": ("beach",),
        "face_tags": ("smiling",),
        "words": "cake",
        "near": (48.85, 2.35),
        "radius_km": 3.0,
        "month": 7,
    }
    assert ids(library, settings, **combined) == [1]
    assert ids(library, settings, **{**combined, "month": 8}) == []
    assert found(library, settings, tags=("beach",), year=2021, persons=("Alan",)) == {3}


def test_words_rank_the_description_above_the_location(library, settings):
    with library.connection() as conn:
        conn.execute(
            """INSERT INTO llm_analysis (photo_id, model_name, description, location_description)
               VALUES (5, 'llm', 'A quiet museum hall.', 'beach cafe')"""
        )
    results = search(library, settings, SearchRequest(words="beach"))
    assert [r.photo_id for r in results] == [1, 5]
    assert results[0].score > results[1].score > 0


def test_results_carry_paths_dates_and_persons(library, settings):
    (result,) = search(library, settings, SearchRequest(persons=("Grace", "Alan")))
    assert str(result.original_path) == "/photos/a.jpg"
    assert result.normalized_path == settings.images_dir / "norm/1.png"
    assert result.captured_at.isoformat() == "2019-07-04T10:00:00"
    assert [(p.id, p.name) for p in result.persons] == [(ALAN, "Alan Turing"), (GRACE, "Grace Hopper")]


def test_like_photo_ranks_its_nearest_photos_and_leaves_it_out(library, settings):
    results = search(library, settings, SearchRequest(like_photo=1))
    assert [r.photo_id for r in results] == [2, 5, 3]
    assert results[0].score == pytest.approx(1 / (1.04**0.5), abs=1e-5)
    assert ids(library, settings, like_photo=1, camera="iphone") == [3]


def test_like_face_ranks_photos_by_their_nearest_face(library, settings):
    assert ids(library, settings, like_face=101) == [2, 3, 1, 4]  # photo 1's other face (Alan) is far
    assert ids(library, settings, like_face=101, persons=("Alan",)) == [3, 1]


def test_place_matches_country_region_city_and_country_code(library, settings):
    with library.connection() as conn:
        conn.execute(
            """INSERT INTO photo_place (photo_id, latitude, longitude, country_code, country, region, city,
                                        distance_km, source)
               VALUES (1, 48.86, 2.35, 'FR', 'France', 'Île-de-France', 'Paris', 0.5, 'test'),
                      (5, 48.85, 2.30, 'FR', 'France', 'Île-de-France', 'Paris', 1.5, 'test'),
                      (2, 51.50, -0.12, 'GB', 'United Kingdom', 'England', 'London', 0.2, 'test')"""
        )
    assert found(library, settings, place="paris") == {1, 5}
    assert found(library, settings, place="United Kingdom") == {2}
    assert found(library, settings, place="england") == {2}
    assert found(library, settings, place="fr") == {1, 5}
    assert found(library, settings, place="Berlin") == set()


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"persons": ("Nobody",)}, "no person named 'Nobody'"),
        ({"clusters": (999,)}, "no cluster with id 999"),
        ({"like_photo": 4}, "photo 4 has no mobileclip:s2 image embedding"),
        ({"like_photo": 99}, "no photo with id 99"),
        ({"like_face": 999}, "no face embedding for detection 999"),
        ({"start": date(2020, 1, 2), "end": date(2020, 1, 1)}, "is after --to"),
        ({"limit": 0}, "--limit must be between"),
        ({"like_photo": 1, "like_face": 101}, "give one of"),
    ],
)
def test_what_cannot_be_searched_is_one_clear_error(library, settings, request_, message):
    with pytest.raises(SearchError, match=message):
        search(library, settings, SearchRequest(**request_))


def test_an_ambiguous_name_lists_the_persons(library, settings):
    with library.connection() as conn:
        conn.execute(
            """INSERT INTO person (id, collection_id, first_name, last_name, created_by)
               VALUES (4, 1, 'Grace', 'Kelly', 'user')"""
        )
    with pytest.raises(SearchError, match=r"'Grace' names 2 persons: Grace Hopper \(id 1\), Grace Kelly \(id 4\)"):
        search(library, settings, SearchRequest(persons=("Grace",)))
    assert found(library, settings, persons=("grace kelly",)) == set()


def test_an_automatic_placeholder_person_is_not_a_name(library, settings):
    """Auto-association's 'Unknown' persons are found through their clusters, not by that name."""
    with library.connection() as conn:
        conn.execute(
            """INSERT INTO person (id, collection_id, first_name, auto_created, created_by)
               VALUES (5, 1, 'Unknown', true, 'auto:associate'), (6, 1, 'Unknown', true, 'auto:associate')"""
        )
        conn.execute("UPDATE cluster SET person_id = 5 WHERE id = 12")
    with pytest.raises(SearchError, match="no person named 'Unknown'"):
        search(library, settings, SearchRequest(persons=("Unknown",)))
    (result,) = search(library, settings, SearchRequest(clusters=(12,)))
    assert [(p.id, p.name) for p in result.persons] == [(5, None)]


def test_limit(library, settings):
    assert ids(library, settings, limit=2) == [3, 5]
