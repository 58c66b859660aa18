"""Dates from faces: birth dates, each person's age in each photo, and an estimated capture year
for photos without one.

- Birth: a birth date a user gives (`photodb people set-birthdate`) wins; its year is
  fractional_year(birth date) with a standard deviation of BIRTH_DATE_SD years. Else the
  aggregator's estimated_birth_year with its birth_year_stddev, at least MIN_BIRTH_YEAR_SD (the
  year is rounded to whole years, and a person seen a few times has a spread of 0).
- Age error model: an age estimate of `a` years is off by a standard deviation of
  max(AGE_SD_FLOOR, AGE_SD_SHARE * a) years (2 years for children, 15 % of the age above 13:
  the models' errors grow with age; the offline model's MAE is 5 years on adults).
- A photo with no capture date and recognised faces with age estimates: each face gives
  year_i = birth_i + age_i with variance var_birth_i + var_age_i; the faces are combined by
  inverse-variance weighting, year = sum(y_i / v_i) / sum(1 / v_i), spread = sqrt(1 / sum(1 / v_i)).
  Stored in photo_date_estimate (source 'faces'); metadata.captured_at is never written.
- Recomputed at the end of every age/gender aggregation (inputs: ages, birth years, links): for
  the whole collection, or, after a decision by hand (link, merge, move, split, a birth date),
  for the photos of the persons it touched: the undated photos with a face of theirs now, and
  those whose stored estimate used one of them. A rerun with the same inputs changes nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg

from photodb.database import date_repository as date_sql
from photodb.database.connection import Database
from photodb.database.date_repository import DatingFace, PhotoEstimate
from photodb.people import age_gender

#: Standard deviation of a birth year taken from a birth date a user gave.
BIRTH_DATE_SD = 0.25
#: The least standard deviation of an estimated birth year.
MIN_BIRTH_YEAR_SD = 0.5
#: Age error model: sd = max(AGE_SD_FLOOR, AGE_SD_SHARE * age).
AGE_SD_FLOOR = 2.0
AGE_SD_SHARE = 0.15


def age_sd(age: float) -> float:
    return max(AGE_SD_FLOOR, AGE_SD_SHARE * age)


def birth_year(birth_date: date | None, estimated_year: int | None, stddev: float | None) -> tuple[float, float] | None:
    """(birth as a fractional year, its standard deviation), or None when neither is known."""
    if birth_date is not None:
        return age_gender.fractional_year(datetime(birth_date.year, birth_date.month, birth_date.day)), BIRTH_DATE_SD
    if estimated_year is None:
        return None
    return float(estimated_year), max(stddev or 0.0, MIN_BIRTH_YEAR_SD)


def age_at(birth_date: date | None, estimated_year: int | None, moment: datetime | float) -> float | None:
    """A person's age, in years, at a capture time or a fractional year; None without a birth year."""
    birth = birth_year(birth_date, estimated_year, None)
    if birth is None:
        return None
    year = moment if isinstance(moment, float) else age_gender.fractional_year(moment)
    return year - birth[0]


def face_year(face: DatingFace) -> tuple[float, float] | None:
    """(year the face was seen, its variance)."""
    birth = birth_year(face.birth_date, face.estimated_birth_year, face.birth_year_stddev)
    if birth is None:
        return None
    age = float(face.age)
    return birth[0] + age, birth[1] ** 2 + age_sd(age) ** 2


def combine(faces: Sequence[DatingFace]) -> tuple[float, float, list[dict[str, Any]]] | None:
    """Inverse-variance weighted year of the faces, its standard deviation, and what was used."""
    used = [(face, seen) for face in faces if (seen := face_year(face)) is not None]
    if not used:
        return None
    weights = [1.0 / variance for _, (_, variance) in used]
    total = sum(weights)
    year = sum(w * y for w, (_, (y, _)) in zip(weights, used, strict=True)) / total
    persons = [
        {
            "person_id": f.person_id,
            "detection_id": f.detection_id,
            "year": round(y, 4),
            "stddev": round(math.sqrt(v), 4),
        }
        for f, (y, v) in used
    ]
    return year, math.sqrt(1.0 / total), persons


@dataclass(frozen=True)
class DateReport:
    estimated: int
    removed: int

    def as_dict(self) -> dict[str, int]:
        return {"estimated": self.estimated, "removed": self.removed}


def estimate_photo_dates_in(
    conn: psycopg.Connection, collection_id: int | None, *, person_ids: Sequence[int] | None = None
) -> DateReport:
    """Recompute the 'faces' estimates of the collection (None: all), or only of the photos of
    `person_ids` (see the module's note), in the caller's transaction."""
    photo_ids = None if person_ids is None else date_sql.photos_of_persons(conn, person_ids)
    by_photo: dict[int, list[DatingFace]] = defaultdict(list)
    for face in date_sql.dating_faces(conn, collection_id, photo_ids):
        by_photo[face.photo_id].append(face)
    estimates = []
    for photo_id, faces in by_photo.items():
        combined = combine(faces)
        if combined is not None:
            estimates.append(PhotoEstimate(photo_id, round(combined[0], 6), round(combined[1], 6), combined[2]))
    removed = date_sql.replace_estimates(conn, collection_id, estimates, photo_ids)
    return DateReport(estimated=len(estimates), removed=removed)


def estimate_photo_dates(db: Database, collection_id: int | None) -> DateReport:
    with db.connection() as conn, conn.transaction():
        return estimate_photo_dates_in(conn, collection_id)


def person_ages(db: Database, person_id: int) -> list[dict[str, Any]]:
    """The person's dated photos (captured or estimated), oldest first, with the person's age in each
    from the birth date or the estimated birth year (None without either)."""
    with db.connection() as conn:
        birth_date, estimated_year, _ = date_sql.birth_of(conn, person_id)
        photos = date_sql.person_photos(conn, person_id)
    out = []
    for photo in photos:
        moment = photo.captured_at if photo.captured_at is not None else photo.estimated_year
        assert moment is not None
        age = age_at(birth_date, estimated_year, moment)
        out.append(
            {
                "photo_id": photo.photo_id,
                "captured_at": photo.captured_at,
                "estimated_year": photo.estimated_year,
                "age": None if age is None else round(age, 1),
                "age_estimate": photo.age_estimate,
            }
        )
    return out
