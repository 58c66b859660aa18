"""Dates from faces on a generated library whose answers are computed by hand.

    person  birth                          photo  captured      faces (person, age estimate)
    Ann     estimated 1950, stddev 1.0     1      -             Ann 40, Cid 12, a stranger 30
    Cid     birth date 1980-01-01 (user)   2      2005-01-01    Ann 55 (EXIF date: never replaced)
    Bo      none                           3      -             Bo 20 (no birth year: no estimate)
                                           4      -             Ann without an age estimate

Age error model: sd = max(2, 0.15 * age). Photo 1: Ann gives 1950 + 40 = 1990 with variance
1.0**2 + 6**2 = 37; Cid gives 1980 + 12 = 1992 with variance 0.25**2 + 2**2 = 4.0625.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

import psycopg
import pytest

from photodb.database.connection import Database
from photodb.people.dates import estimate_photo_dates
from photodb.search.service import SearchRequest, search
from tests.cli import MAINTENANCE, cli_env, run_command

ANN, BO, CID = 1, 2, 3
W_ANN, W_CID = 1 / 37, 1 / 4.0625
PHOTO_1_YEAR = (1990 * W_ANN + 1992 * W_CID) / (W_ANN + W_CID)  # 1991.8021
PHOTO_1_SD = math.sqrt(1 / (W_ANN + W_CID))  # 1.9133


def face(conn: psycopg.Connection, photo: int, person: int | None, age: float | None, *, via_cluster: bool) -> None:
    cluster = None
    if via_cluster and person is not None:
        cluster = conn.execute(
            "INSERT INTO cluster (collection_id, embedding_model, person_id) VALUES (1, 'test', %s) RETURNING id",
            (person,),
        ).fetchone()[0]
    conn.execute(
        """INSERT INTO person_detection (photo_id, face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height,
                                         face_confidence, age_estimate, person_id, cluster_id)
           VALUES (%s, 0, 0, 80, 80, 0.9, %s, %s, %s)""",
        (photo, age, None if via_cluster else person, cluster),
    )


@pytest.fixture
def library(db: Database) -> Database:
    with db.connection() as conn, conn.transaction():
        conn.execute(
            """INSERT INTO photo (id, collection_id, filename) VALUES
               (1, 1, 'scan1.jpg'), (2, 1, 'exif.jpg'), (3, 1, 'scan3.jpg'), (4, 1, 'scan4.jpg')"""
        )
        conn.execute("INSERT INTO metadata (photo_id, captured_at) VALUES (2, '2005-01-01 00:00'), (3, NULL)")
        conn.execute(
            """INSERT INTO person (id, collection_id, first_name, estimated_birth_year, birth_year_stddev,
                                   birth_date, birth_date_by) VALUES
               (1, 1, 'Ann', 1950, 1.0, NULL, NULL), (2, 1, 'Bo', NULL, NULL, NULL, NULL),
               (3, 1, 'Cid', NULL, NULL, '1980-01-01', 'user')"""
        )
        face(conn, 1, ANN, 40, via_cluster=True)
        face(conn, 1, CID, 12, via_cluster=False)
        face(conn, 1, None, 30, via_cluster=False)
        face(conn, 2, ANN, 55, via_cluster=True)
        face(conn, 3, BO, 20, via_cluster=False)
        face(conn, 4, ANN, None, via_cluster=False)
    return db


def estimates(db: Database) -> dict[int, tuple[float, float, str, datetime]]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT photo_id, estimated_year, stddev_years, source, computed_at FROM photo_date_estimate"
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def test_the_faces_date_an_undated_photo_by_inverse_variance_weighting(library):
    report = estimate_photo_dates(library, None)
    assert report.as_dict() == {"estimated": 1, "removed": 0}
    found = estimates(library)
    assert set(found) == {1}  # 2 has an EXIF date, 3 nobody with a birth year, 4 no age estimate
    year, spread, source, _ = found[1]
    assert year == pytest.approx(1991.8021, abs=1e-4) and year == pytest.approx(PHOTO_1_YEAR, abs=1e-6)
    assert spread == pytest.approx(1.9133, abs=1e-4) and spread == pytest.approx(PHOTO_1_SD, abs=1e-6)
    assert source == "faces"


def test_exif_dates_are_never_overwritten_and_a_rerun_changes_nothing(library):
    estimate_photo_dates(library, None)
    first = estimates(library)
    assert estimate_photo_dates(library, None).as_dict() == {"estimated": 1, "removed": 0}
    assert estimates(library) == first  # same computed_at: nothing rewritten
    with library.connection() as conn:
        rows = conn.execute("SELECT photo_id, captured_at FROM metadata ORDER BY 1").fetchall()
    assert rows == [(2, datetime(2005, 1, 1)), (3, None)]


def test_a_photo_that_gains_a_date_loses_its_estimate(library):
    estimate_photo_dates(library, None)
    with library.connection() as conn:
        conn.execute("INSERT INTO metadata (photo_id, captured_at) VALUES (1, '1991-05-05')")
    assert estimate_photo_dates(library, None).as_dict() == {"estimated": 0, "removed": 1}
    assert estimates(library) == {}


def test_set_birthdate_overrides_the_estimated_birth_year_and_clear_restores_it(library, cli):
    estimate_photo_dates(library, None)
    result = cli("people", "set-birthdate", ANN, "1955-01-01", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["birth_date"] == "1955-01-01"
    w_ann = 1 / (0.25**2 + 6**2)  # 1955 + 40 = 1995
    assert estimates(library)[1][0] == pytest.approx((1995 * w_ann + 1992 * W_CID) / (w_ann + W_CID), abs=1e-6)
    with library.connection() as conn:
        assert conn.execute("SELECT birth_date_by FROM person WHERE id = %s", (ANN,)).fetchone() == ("user",)
    assert cli("people", "set-birthdate", ANN, "--clear").exit_code == 0
    assert estimates(library)[1][0] == pytest.approx(PHOTO_1_YEAR, abs=1e-6)


def test_people_show_gives_the_age_in_each_dated_photo(library, cli):
    estimate_photo_dates(library, None)
    ages = json.loads(cli("people", "show", ANN, "--json").stdout)["ages"]
    assert [(a["photo_id"], a["age"]) for a in ages] == [(1, round(PHOTO_1_YEAR - 1950, 1)), (2, 55.0)]
    assert ages[0]["estimated_year"] == pytest.approx(PHOTO_1_YEAR) and ages[1]["estimated_year"] is None
    cli("people", "set-birthdate", ANN, "1955-01-01")
    ages = json.loads(cli("people", "show", ANN, "--json").stdout)["ages"]
    assert ages[1]["age"] == 50.0  # 2005-01-01 minus 1955-01-01


def test_search_by_year_finds_an_undated_photo_by_its_estimate(library, settings, cli):
    estimate_photo_dates(library, None)
    # 1991.80 ± 1.91 spans 1989.89 .. 1993.72: years 1989 to 1993 overlap it, 1988 and 1994 do not.
    for year, expected in [(1988, set()), (1989, {1}), (1993, {1}), (1994, set()), (2005, {2})]:
        assert {r.photo_id for r in search(library, settings, SearchRequest(year=year))} == expected, year
    (hit,) = search(library, settings, SearchRequest(year=1992))
    assert hit.captured_at is None and hit.estimated_year == pytest.approx(PHOTO_1_YEAR)
    rows = json.loads(cli("search", "--year", "1992", "--json").stdout)
    assert [(r["photo_id"], r["date_estimated"]) for r in rows] == [(1, True)]
    assert rows[0]["estimated_stddev_years"] == pytest.approx(PHOTO_1_SD)
    dated = json.loads(cli("search", "--year", "2005", "--json").stdout)
    assert [(r["photo_id"], r["date_estimated"], r["estimated_year"]) for r in dated] == [(2, False, None)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((99, "1990-01-01"), "no person 99"),
        ((ANN, "2999-01-01"), "in the future"),
        ((ANN, "1990-13-01"), "is not a date"),
        ((ANN, "yesterday"), "is not a date"),
        ((ANN, "1990-1-1"), "is not a date"),
    ],
)
def test_bad_birth_dates_are_one_line_exit_2_and_write_nothing(library, cli, args, message):
    estimate_photo_dates(library, None)
    with library.connection() as conn:
        before = conn.execute("SELECT * FROM person ORDER BY id").fetchall(), estimates(library)
    result = cli("people", "set-birthdate", *args)
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    with library.connection() as conn:
        assert (conn.execute("SELECT * FROM person ORDER BY id").fetchall(), estimates(library)) == before


def test_the_age_gender_aggregation_and_the_maintenance_command_date_photos(db, database_url, tmp_path):
    """Bo is seen at 30 in three photos dated 2000-01-01 (birth year 1970, spread 0, floored to 0.5)
    and at 40 in a scan: 1970 + 40 = 2010, sd sqrt(0.5**2 + 6**2)."""
    with db.connection() as conn, conn.transaction():
        conn.execute("INSERT INTO person (id, collection_id, first_name) VALUES (2, 1, 'Bo')")
        for photo in (1, 2, 3, 4):
            conn.execute("INSERT INTO photo (id, collection_id, filename) VALUES (%s, 1, %s)", (photo, f"{photo}.jpg"))
            if photo < 4:
                conn.execute("INSERT INTO metadata (photo_id, captured_at) VALUES (%s, '2000-01-01')", (photo,))
            face(conn, photo, BO, 30 if photo < 4 else 40, via_cluster=False)
    env = cli_env(tmp_path, database_url)
    assert run_command([MAINTENANCE, "aggregate-age-gender"], env=env).returncode == 0
    year, spread, _, _ = estimates(db)[4]
    assert year == pytest.approx(2010.0) and spread == pytest.approx(math.sqrt(0.25 + 36))
    with db.connection() as conn:
        conn.execute("DELETE FROM photo_date_estimate")
    result = run_command([MAINTENANCE, "estimate-dates", "--json"], env=env)
    assert json.loads(result.stdout) == {"estimated": 1, "removed": 0}
    assert set(estimates(db)) == {4}


def full_recompute_changes_nothing(db: Database) -> None:
    """What a command refreshed for its persons is what the whole collection's recompute gives."""
    before = {photo: row[:3] for photo, row in estimates(db).items()}
    estimate_photo_dates(db, None)
    assert {photo: row[:3] for photo, row in estimates(db).items()} == before


def test_people_commands_refresh_the_touched_persons_and_their_photos_at_once(library, cli):
    """Merging Bo into Ann gives Ann Bo's scan (photo 3, age 20): Ann's birth year, re-aggregated
    from her dated face (2005 - 55 = 1950, spread 0 floored to 0.5), dates it at 1970 in the same
    command (sd sqrt(0.5**2 + 3**2)). Unlinking Ann's cluster of photo 1 leaves Cid alone there: 1980 + 12 = 1992."""
    estimate_photo_dates(library, None)
    assert set(estimates(library)) == {1}
    with library.connection() as conn:
        conn.execute("UPDATE person SET estimated_birth_year = NULL, birth_year_stddev = NULL WHERE id = %s", (ANN,))
    merged = cli("people", "merge", ANN, BO, "--json")
    assert merged.exit_code == 0, merged.output
    with library.connection() as conn:
        born = conn.execute("SELECT estimated_birth_year, birth_year_stddev FROM person WHERE id = %s", (ANN,))
        assert born.fetchone() == (1950, 0.0)
    found = estimates(library)
    assert set(found) == {1, 3}
    assert found[3][0] == pytest.approx(1970.0) and found[3][1] == pytest.approx(math.sqrt(0.25 + 3.0**2))
    full_recompute_changes_nothing(library)
    with library.connection() as conn:
        (cluster,) = conn.execute(
            "SELECT cluster_id FROM person_detection WHERE photo_id = 1 AND cluster_id IS NOT NULL"
        ).fetchone()
    assert cli("people", "unlink", cluster).exit_code == 0
    year, spread, _, _ = estimates(library)[1]
    assert year == pytest.approx(1992.0) and spread == pytest.approx(math.sqrt(4.0625))
    full_recompute_changes_nothing(library)
