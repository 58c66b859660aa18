"""The metadata stage names the place of each photo with GPS; the geocoder never fails a photo."""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from photodb.config import Settings
from photodb.database import place_repository as places_db
from photodb.database.connection import Database
from photodb.database.models import Photo
from photodb.database.repository import PhotoRepository
from photodb.places import geocoder
from photodb.stages.base import StageContext
from photodb.stages.metadata import MetadataStage
from tests.cli import cli_env, process_local
from tests.samples import SAMPLES

SAN_JOSE = SAMPLES / "faces/vladmandic_face_api/sample1.jpg"
NOVA_KAKHOVKA = SAMPLES / "real/pillow_heif/empty_icc.heic"
NO_GPS = SAMPLES / "real/pillow/flower.jpg"


def test_process_local_names_the_places_of_the_sample_photos_with_gps(tmp_path: Path, database_url: str) -> None:
    env = cli_env(tmp_path, database_url)
    result = process_local(str(SAMPLES), "--stage", "metadata", "--json", env=env)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT ph.filename, pl.country_code, pl.country, pl.region, pl.city
               FROM photo_place pl JOIN photo ph ON ph.id = pl.photo_id ORDER BY ph.filename"""
        ).fetchall()
        with_gps = conn.execute("SELECT count(*) FROM metadata WHERE latitude IS NOT NULL").fetchone()
    assert with_gps == (2,)
    assert rows == [
        ("faces/vladmandic_face_api/sample1.jpg", "US", "United States", "California", "San Jose"),
        ("real/pillow_heif/empty_icc.heic", "UA", "Ukraine", "Kherson", "Nova Kakhovka"),
    ]


def _stage_and_photo(db: Database, settings: Settings, library: Path, source: Path) -> tuple[MetadataStage, Photo]:
    library.mkdir(exist_ok=True)
    name = f"{uuid.uuid4()}{source.suffix}"
    shutil.copyfile(source, library / name)
    repo = PhotoRepository(db)
    collection = repo.set_collection_root(repo.get_or_create_collection("default").id, library)
    with db.autocommit() as conn:
        row = conn.execute(
            """INSERT INTO photo (collection_id, uuid, filename) VALUES (%s, %s, %s) RETURNING id""",
            (collection.id, uuid.uuid4(), name),
        ).fetchone()
    assert row is not None
    return MetadataStage(StageContext(settings, db, collection)), repo.get_photo(row[0])


def _place(db: Database, photo: Photo) -> dict[str, object] | None:
    with db.autocommit() as conn:
        return places_db.get_place(conn, photo.id)


def test_a_geocoder_that_cannot_run_leaves_the_place_empty_and_warns_once(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stage, san_jose = _stage_and_photo(db, settings, tmp_path / "lib", SAN_JOSE)
    _, ukraine = _stage_and_photo(db, settings, tmp_path / "lib", NOVA_KAKHOVKA)
    with monkeypatch.context() as broken:
        broken.setattr(geocoder, "_index", None)
        broken.setattr(geocoder, "_failure", None)
        broken.setattr(geocoder, "DISTRIBUTION", "photodb-no-such-geonames-package")
        with caplog.at_level(logging.WARNING, logger="photodb.stages.metadata"):
            stage.process(san_jose)
            stage.process(ukraine)
    metadata = PhotoRepository(db).get_metadata(san_jose.id)
    assert metadata is not None and metadata["latitude"] == pytest.approx(37.319637, abs=1e-4)
    assert _place(db, san_jose) is None and _place(db, ukraine) is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "photodb.stages.metadata"]
    assert len(warnings) == 1 and "places left empty" in warnings[0] and "photodb[ml]" in warnings[0]

    stage.process(san_jose)  # the data is back (a new run): the rerun names the place
    place = _place(db, san_jose)
    assert place is not None and (place["country_code"], place["city"]) == ("US", "San Jose")


def test_a_photo_without_gps_has_no_place_and_losing_gps_drops_the_old_one(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    stage, no_gps = _stage_and_photo(db, settings, tmp_path / "lib", NO_GPS)
    stage.process(no_gps)
    assert PhotoRepository(db).get_metadata(no_gps.id) is not None
    assert _place(db, no_gps) is None

    stage, photo = _stage_and_photo(db, settings, tmp_path / "lib", NOVA_KAKHOVKA)
    stage.process(photo)
    place = _place(db, photo)
    assert place is not None and place["country"] == "Ukraine"

    shutil.copyfile(NO_GPS, tmp_path / "lib" / photo.filename)  # the file was replaced by one without GPS
    stage.process(photo)
    assert _place(db, photo) is None


def test_a_place_stays_when_a_rerun_cannot_geocode_the_same_coordinates(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage, photo = _stage_and_photo(db, settings, tmp_path / "lib", SAN_JOSE)
    stage.process(photo)
    named = _place(db, photo)
    assert named is not None and named["city"] == "San Jose"
    monkeypatch.setattr(geocoder, "_index", None)
    monkeypatch.setattr(geocoder, "_failure", geocoder.PlacesUnavailable("places need the ml extra"))
    stage.process(photo)  # e.g. `process-local --force` on a core install
    assert _place(db, photo) == named
