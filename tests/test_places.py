"""Offline places: the geocoder on known coordinates, its one load per process, and the backfill."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from photodb.database import place_repository as places_db
from photodb.database.connection import Database
from photodb.places import Place, PlacesUnavailable, geocoder, place_for, place_index
from photodb.places.backfill import backfill_places
from tests.cli import BIN, cli_env, run_command

# (what, latitude, longitude, country code, country, region, city); the first two are the sample
# photos with GPS in examples/photos (manifest.json).
KNOWN_PLACES = [
    ("sample1.jpg, Santana Row", 37.319637, -121.946502, "US", "United States", "California", "San Jose"),
    ("empty_icc.heic", 46.754703, 33.336106, "UA", "Ukraine", "Kherson", "Nova Kakhovka"),
    ("Eiffel Tower", 48.8584, 2.2945, "FR", "France", "Île-de-France", "Paris"),
    ("Sydney Opera House", -33.8568, 151.2153, "AU", "Australia", "New South Wales", "Sydney"),
    ("Brandenburg Gate", 52.5163, 13.3777, "DE", "Germany", "State of Berlin", "Berlin"),
    ("Colosseum", 41.8902, 12.4922, "IT", "Italy", "Lazio", "Rome"),
    ("Christ the Redeemer", -22.9519, -43.2105, "BR", "Brazil", "Rio de Janeiro", "Rio de Janeiro"),
    ("Golden Gate Bridge", 37.8199, -122.4783, "US", "United States", "California", "San Francisco"),
    ("Kremlin", 55.752, 37.6175, "RU", "Russian Federation", "Moscow", "Moscow"),
    ("Taj Mahal", 27.1751, 78.0421, "IN", "India", "Uttar Pradesh", "Agra"),
    ("Hallgrímskirkja", 64.1417, -21.9266, "IS", "Iceland", "Capital Region", "Reykjavík"),
    ("Obelisco", -34.6037, -58.3816, "AR", "Argentina", "Buenos Aires F.D.", "Buenos Aires"),
    ("Jet d'Eau", 46.2074, 6.1557, "CH", "Switzerland", "Geneva", "Genève"),
]


@pytest.mark.parametrize(
    ("what", "latitude", "longitude", "code", "country", "region", "city"),
    KNOWN_PLACES,
    ids=[p[0] for p in KNOWN_PLACES],
)
def test_known_coordinates_get_their_country_region_and_city(
    what: str, latitude: float, longitude: float, code: str, country: str, region: str, city: str
) -> None:
    place = place_for(latitude, longitude)
    assert (place.country_code, place.country, place.region, place.city) == (code, country, region, city), what
    assert 0 <= place.distance_km < geocoder.CITY_MAX_KM


def test_a_city_wins_over_the_suburb_whose_point_is_nearer() -> None:
    """The Eiffel Tower's nearest GeoNames point is Neuilly-sur-Seine; Paris's reach holds it."""
    index = place_index()
    nearest = int(index.tree.query(geocoder._unit_xyz([48.8584], [2.2945]))[1][0])
    assert index.cities[nearest] != "Paris"
    assert place_for(48.8584, 2.2945).city == "Paris"


def test_open_sea_is_nowhere_and_a_far_coast_only_a_country() -> None:
    pacific = place_for(0.0, -140.0)
    assert pacific == Place(None, None, None, None, pacific.distance_km)
    assert pacific.distance_km > geocoder.COUNTRY_MAX_KM and not pacific.named
    fiji_waters = place_for(-17.7, 179.99)  # 80 km off Fiji's islands
    assert (fiji_waters.country_code, fiji_waters.region, fiji_waters.city) == ("FJ", None, None)
    assert geocoder.CITY_MAX_KM < fiji_waters.distance_km <= geocoder.COUNTRY_MAX_KM


def test_many_positions_in_one_query_match_one_by_one() -> None:
    latitudes = [p[1] for p in KNOWN_PLACES] + [0.0]
    longitudes = [p[2] for p in KNOWN_PLACES] + [-140.0]
    assert place_index().lookup_many(latitudes, longitudes) == [
        place_for(lat, lon) for lat, lon in zip(latitudes, longitudes, strict=True)
    ]
    assert place_index().lookup_many([], []) == []


@pytest.mark.parametrize(("latitude", "longitude"), [(91.0, 0.0), (0.0, 180.5), (float("nan"), 0.0)])
def test_impossible_coordinates_are_refused(latitude: float, longitude: float) -> None:
    with pytest.raises(ValueError, match="latitude"):
        place_for(latitude, longitude)


def test_the_index_is_loaded_once_however_many_threads_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[int] = []
    real_load = geocoder.load_packaged_index

    def counted_load() -> geocoder.PlaceIndex:
        loads.append(1)
        return real_load()

    monkeypatch.setattr(geocoder, "_index", None)
    monkeypatch.setattr(geocoder, "load_packaged_index", counted_load)
    start = threading.Barrier(6)
    got: list[geocoder.PlaceIndex] = []

    def ask() -> None:
        start.wait()
        got.append(place_index())

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    assert len(got) == 6 and all(index is got[0] for index in got)


def test_missing_data_is_one_clear_error_and_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(geocoder, "_index", None)
    monkeypatch.setattr(geocoder, "_failure", None)
    monkeypatch.setattr(geocoder, "DISTRIBUTION", "photodb-no-such-geonames-package")
    with pytest.raises(PlacesUnavailable, match=r"ml extra.*photodb\[ml\]") as first:
        place_for(48.85, 2.29)
    with pytest.raises(PlacesUnavailable) as second:
        place_for(48.85, 2.29)
    assert second.value is first.value


# ---- backfill -------------------------------------------------------------------------------


def _photo(db: Database, collection: str, gps: tuple[float, float] | None) -> int:
    """A photo row with metadata as the metadata stage leaves it (GPS or none), but no place."""
    with db.autocommit() as conn:
        conn.execute("INSERT INTO collection (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (collection,))
        row = conn.execute(
            """INSERT INTO photo (collection_id, uuid, filename)
               VALUES ((SELECT id FROM collection WHERE name = %s), %s, %s) RETURNING id""",
            (collection, uuid.uuid4(), f"{uuid.uuid4()}.jpg"),
        ).fetchone()
        assert row is not None
        lat, lon = gps if gps else (None, None)
        conn.execute("INSERT INTO metadata (photo_id, latitude, longitude) VALUES (%s, %s, %s)", (row[0], lat, lon))
        return int(row[0])


def _places(db: Database) -> dict[int, dict[str, object]]:
    with db.autocommit() as conn:
        ids = [r[0] for r in conn.execute("SELECT photo_id FROM photo_place").fetchall()]
        return {photo_id: places_db.get_place(conn, photo_id) for photo_id in ids}  # type: ignore[misc]


def test_backfill_fills_only_what_is_missing_and_a_rerun_changes_nothing(db: Database) -> None:
    paris = _photo(db, "default", (48.8584, 2.2945))
    sydney_done = _photo(db, "default", (-33.8568, 151.2153))
    moved = _photo(db, "default", (41.8902, 12.4922))
    no_gps = _photo(db, "default", None)
    at_sea = _photo(db, "default", (0.0, -140.0))
    with db.autocommit() as conn:
        done = Place("AU", "Australia", "New South Wales", "Sydney", 1.0)
        places_db.write_place(conn, sydney_done, -33.8568, 151.2153, done, "earlier-run")
        stale = Place("FR", "France", "Île-de-France", "Paris", 4.0)
        places_db.write_place(conn, moved, 48.8584, 2.2945, stale, "earlier-run")  # the photo's GPS changed since

    first = backfill_places(db, collection_id=None, force=False, chunk_size=2)
    assert (first.candidates, first.written, first.skipped) == (3, 3, 0)
    places = _places(db)
    assert set(places) == {paris, sydney_done, moved, at_sea} and no_gps not in places
    assert places[paris]["city"] == "Paris" and places[moved]["city"] == "Rome"
    assert places[sydney_done]["source"] == "earlier-run"  # a current place is left alone
    assert places[at_sea]["country_code"] is None  # stored as "nothing near", so it is not redone
    assert places[paris]["source"] == place_index().source

    again = backfill_places(db, collection_id=None, force=False)
    assert (again.candidates, again.written) == (0, 0)
    assert _places(db) == places

    forced = backfill_places(db, collection_id=None, force=True)
    assert (forced.candidates, forced.written) == (4, 4)
    assert _places(db)[sydney_done]["source"] == place_index().source


def test_backfill_of_one_collection_leaves_the_others(db: Database) -> None:
    mine = _photo(db, "trips", (52.5163, 13.3777))
    theirs = _photo(db, "default", (55.752, 37.6175))
    with db.autocommit() as conn:
        trips = conn.execute("SELECT id FROM collection WHERE name = 'trips'").fetchone()
    assert trips is not None
    result = backfill_places(db, collection_id=trips[0], force=False)
    assert result.written == 1
    assert set(_places(db)) == {mine} and theirs not in _places(db)


def test_a_place_is_not_stored_for_coordinates_that_changed_after_they_were_read(db: Database) -> None:
    """What makes the backfill safe beside process-local: the metadata stage may rewrite GPS mid-chunk."""
    rome = _photo(db, "default", (41.8902, 12.4922))
    with db.autocommit() as conn:
        chunk = places_db.photos_needing_place(conn, collection_id=None, force=False, after_id=0, limit=10)
        conn.execute("UPDATE metadata SET latitude = 52.5163, longitude = 13.3777 WHERE photo_id = %s", (rome,))
        found = place_index().lookup_many([p.latitude for p in chunk], [p.longitude for p in chunk])
        written = places_db.store_backfilled(conn, list(zip(chunk, found, strict=True)), source="test", force=True)
    assert written == 0 and _places(db) == {}
    assert backfill_places(db, collection_id=None, force=False).written == 1
    assert _places(db)[rome]["city"] == "Berlin"


def test_photodb_places_backfill_and_list_commands(db: Database, tmp_path, database_url: str) -> None:
    _photo(db, "default", (48.8584, 2.2945))
    _photo(db, "default", (48.8600, 2.3500))
    _photo(db, "default", (-33.8568, 151.2153))
    _photo(db, "default", None)
    env = cli_env(tmp_path, database_url)
    photodb = str(BIN / "photodb")

    before = run_command([photodb, "places", "list", "--json"], env=env)
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout) == {"places": [], "photos_without_place": 3}

    backfill = run_command([photodb, "places", "backfill", "--json"], env=env)
    assert backfill.returncode == 0, backfill.stderr
    assert json.loads(backfill.stdout)["written"] == 3

    listed = run_command([photodb, "places", "list", "--json"], env=env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert rows["photos_without_place"] == 0
    assert [(r["country"], r["city"], r["photos"]) for r in rows["places"]] == [
        ("France", "Paris", 2),
        ("Australia", "Sydney", 1),
    ]
    table = run_command([photodb, "places", "list", "--countries"], env=env)
    assert table.returncode == 0 and "France (FR)" in table.stdout

    missing = run_command([photodb, "places", "backfill", "--collection", "nope"], env=env)
    assert missing.returncode == 2 and "no collection named 'nope'" in missing.stderr
