"""age_gender_aggregator on generated people whose answers are known: outliers, undated photos,
small faces, links through clusters, ties; and the two commands that run it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest

from photodb.database.connection import Database
from photodb.database.repository import PhotoRepository
from photodb.people.age_gender import aggregate_people, beta_upper_half, fractional_year, robust_location
from tests.cli import MAINTENANCE, bootstrap_clusters, cli_env, run_command


@dataclass(frozen=True)
class Seen:
    """One generated detection of a person."""

    age: float | None
    gender: str | None
    confidence: float | None
    captured: datetime | None
    face_px: float | None = 120.0  # short side of the face box; None: a body alone


class Library:
    """Rows as the pipeline leaves them: photos with capture dates, detections with estimates."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.collection = conn.execute("SELECT id FROM collection WHERE name = 'default'").fetchone()[0]

    def person(self) -> int:
        return self.conn.execute(
            "INSERT INTO person (collection_id, first_name) VALUES (%s, 'test') RETURNING id", (self.collection,)
        ).fetchone()[0]

    def cluster(self, person_id: int) -> int:
        return self.conn.execute(
            "INSERT INTO cluster (collection_id, embedding_model, person_id) VALUES (%s, 'test', %s) RETURNING id",
            (self.collection, person_id),
        ).fetchone()[0]

    def add(self, seen: Seen, *, person_id: int | None = None, cluster_id: int | None = None) -> None:
        photo = self.conn.execute(
            "INSERT INTO photo (collection_id, filename, normalized_scale) VALUES (%s, gen_random_uuid()::text, 0.5) "
            "RETURNING id",
            (self.collection,),
        ).fetchone()[0]
        if seen.captured is not None:
            self.conn.execute("INSERT INTO metadata (photo_id, captured_at) VALUES (%s, %s)", (photo, seen.captured))
        side = None if seen.face_px is None else seen.face_px * 0.5  # stored in normalized pixels (scale 0.5)
        self.conn.execute(
            """INSERT INTO person_detection
                 (photo_id, face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height, face_confidence,
                  body_bbox_x, body_bbox_y, body_bbox_width, body_bbox_height, body_confidence,
                  age_estimate, gender, gender_confidence, person_id, cluster_id)
               VALUES (%s, %s, %s, %s, %s, %s, 0, 0, 400, 800, 0.9, %s, %s, %s, %s, %s)""",
            (
                photo,
                *((None,) * 5 if side is None else (10, 10, side, side, 1.0)),
                seen.age,
                seen.gender,
                seen.confidence,
                person_id,
                cluster_id,
            ),
        )


def person_row(conn: psycopg.Connection, person_id: int) -> tuple:
    return conn.execute(
        """SELECT estimated_birth_year, birth_year_stddev, gender, gender_confidence, age_gender_sample_count,
                  age_gender_updated_at FROM person WHERE id = %s""",
        (person_id,),
    ).fetchone()


@pytest.fixture
def library(db: Database):
    PhotoRepository(db).get_or_create_collection("default")
    with db.connection() as conn:
        yield Library(conn)


def test_birth_year_resists_outliers_and_ignores_undated_photos(db: Database, library: Library):
    rng = np.random.default_rng(7)
    anna = library.person()
    for year in range(2005, 2017):  # twelve dated photos of someone born mid-1980
        captured = datetime(year, 7, 1)
        age = fractional_year(captured) - 1980.5 + rng.uniform(-1.5, 1.5)
        library.add(Seen(age, "F", 0.95, captured), person_id=anna)
    library.add(Seen(5.0, "M", 0.7, datetime(2012, 3, 1)), person_id=anna)  # a child mistaken for her
    library.add(Seen(8.0, "F", 0.9, datetime(2010, 3, 1)), person_id=anna)  # another child
    for _ in range(3):
        library.add(Seen(90.0, "F", 0.9, None), person_id=anna)  # no date: no birth-year sample
    library.conn.commit()

    report = aggregate_people(db, None, min_confidence=0.6)
    assert report.as_dict() == {"people": 1, "with_birth_year": 1, "with_gender": 1}
    birth_year, stddev, gender, confidence, count, updated = person_row(library.conn, anna)
    assert birth_year in (1980, 1981) and stddev < 1.5  # a plain weighted mean: 1984
    assert gender == "F" and 0.99 < confidence < 1.0  # sixteen calibrated 'F' faces against one 'M'
    assert count == 17 and updated is not None


def test_people_through_clusters_small_faces_ties_and_nothing_known(db: Database, library: Library):
    ben, cleo, dora, ed = (library.person() for _ in range(4))
    cluster = library.cluster(ben)
    library.add(Seen(30.0, "M", 0.8, datetime(2020, 1, 1)), cluster_id=cluster)  # 1990, full weight
    for _ in range(2):  # tiny faces (16 px) that disagree: a quarter weight each
        library.add(Seen(20.0, "F", 0.9, datetime(2020, 1, 1), face_px=16), cluster_id=cluster)
    library.add(Seen(40.0, "M", 0.9, None), person_id=cleo)  # only undated photos
    library.add(Seen(None, "M", 0.8, None, face_px=None), person_id=dora)  # a body alone, and a tie
    library.add(Seen(None, "F", 0.8, None, face_px=None), person_id=dora)
    library.add(Seen(None, "U", 0.55, None), person_id=dora)  # an unknown answer does not vote
    library.conn.commit()

    aggregate_people(db, None, min_confidence=0.6)
    b = person_row(library.conn, ben)
    assert b[0] == 1990 and b[2] == "U" and b[3] == pytest.approx(0.5356, abs=1e-3) and b[4] == 3  # two small 'F'
    c = person_row(library.conn, cleo)
    assert c[0] is None and c[1] is None and c[2] == "M" and c[3] == pytest.approx(0.7093, abs=1e-3) and c[4] == 1
    d = person_row(library.conn, dora)
    assert d[0] is None and d[2] == "U" and d[3] == pytest.approx(0.5) and d[4] == 3
    e = person_row(library.conn, ed)
    assert e[:5] == (None, None, None, None, 0) and e[5] is not None


def test_one_photo_never_makes_a_person_certain(db: Database, library: Library):
    grace = library.person()  # one photo, and the model was sure
    library.add(Seen(79.0, "F", 1.0, datetime(1984, 6, 1)), person_id=grace)
    library.conn.commit()
    aggregate_people(db, None, min_confidence=0.6)
    gender, confidence = person_row(library.conn, grace)[2:4]
    assert gender == "F" and 0.6 < confidence < 0.9


def test_agreeing_faces_raise_the_confidence_and_a_disagreeing_minority_lowers_it(db: Database, library: Library):
    one, five, five_and_two = (library.person() for _ in range(3))
    library.add(Seen(30.0, "M", 0.9, None), person_id=one)
    for _ in range(5):
        library.add(Seen(30.0, "M", 0.9, None), person_id=five)
        library.add(Seen(30.0, "M", 0.9, None), person_id=five_and_two)
    for _ in range(2):
        library.add(Seen(30.0, "F", 0.9, None), person_id=five_and_two)
    library.conn.commit()
    aggregate_people(db, None, min_confidence=0.6)
    alone, agreeing, disputed = (person_row(library.conn, p)[2:4] for p in (one, five, five_and_two))
    assert alone[0] == agreeing[0] == disputed[0] == "M"
    assert alone[1] < disputed[1] < agreeing[1] < 1.0
    assert agreeing[1] > 0.9 and alone[1] < 0.8


def test_the_vote_confidence_is_the_beta_posterior_above_one_half():
    from scipy.special import betainc

    for a, b in ((0.5, 0.5), (1.3, 0.7), (0.6, 9.2), (40.5, 3.5), (2000.5, 1999.5), (7.0, 7.0)):
        assert beta_upper_half(a, b) == pytest.approx(1.0 - betainc(a, b, 0.5), abs=1e-10)


def test_robust_location_is_the_weighted_mean_when_nothing_is_odd():
    values, weights = [1980.0, 1981.0, 1982.0, 1983.0], [1.0, 2.0, 2.0, 1.0]
    centre, spread = robust_location(values, weights)
    assert centre == pytest.approx(1981.5, abs=0.01)
    assert spread == pytest.approx(np.sqrt(np.cov(values, aweights=weights, ddof=0)), rel=0.05)
    assert robust_location([], []) is None
    assert robust_location([1990.0], [0.0]) is None


def test_maintenance_and_bootstrap_commands_run_the_aggregation(tmp_path: Path, database_url: str, db, library):
    person = library.person()
    library.add(Seen(40.0, "M", 0.9, datetime(2020, 6, 1)), person_id=person)
    library.conn.commit()
    env = cli_env(tmp_path, database_url)

    result = run_command([MAINTENANCE, "aggregate-age-gender", "--json"], env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"people": 1, "with_birth_year": 1, "with_gender": 1}
    first = person_row(library.conn, person)
    assert first[0] == 1980 and first[2] == "M"

    library.conn.execute("UPDATE person_detection SET age_estimate = 20")
    library.conn.commit()
    clustered = bootstrap_clusters(env=env)
    assert clustered.returncode == 0, clustered.stderr
    assert person_row(library.conn, person)[0] == 2000
