"""age_gender_aggregator: each person's birth year and gender from the estimates of their detections.

- Birth year: every detection with an age estimate and a photo with a capture date gives one
  sample, (capture date as a fractional year) - age. Photos without a date are left out. The
  estimate is a weighted Tukey biweight M-estimate of location: it starts at the weighted median,
  takes the scale from the weighted median absolute deviation (x 1.4826, at least one year), and
  reweights until it settles; samples more than 4.685 scales away get weight zero, nearer ones
  are down-weighted smoothly, so a child mistaken for the person or a wrong date does not drag
  the year. birth_year_stddev is the weighted standard deviation of the samples around the
  estimate, with those robustness weights.
- Gender: a weighted vote of the detections' 'M'/'F' answers, each worth its weight times its
  gender confidence; the winner's share of the votes is the confidence, 'U' below the floor.
  'U' answers do not vote. Dates are not needed.
- A sample's weight is its detection confidence times min(1, face short side / 64 px) in
  original pixels: small or doubtful faces count less (a body alone counts half).

Run after clustering (scripts/bootstrap_clusters.py) and by `photodb-maintenance
aggregate-age-gender`; each run ends by re-estimating the capture years of undated photos
(photodb.people.dates).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import psycopg

from photodb.config import Settings
from photodb.database import person_age_gender as person_sql
from photodb.database.connection import Database
from photodb.database.person_age_gender import PersonAgeGender, PersonSample
from photodb.people import dates as photo_dates

#: Tukey's biweight tuning constant (95 % efficiency for normal data).
BIWEIGHT_C = 4.685
#: MAD to standard deviation for normal data.
MAD_TO_SIGMA = 1.4826
#: The smallest scale, in years: ages come in whole-year steps, and identical samples have MAD 0.
MIN_SCALE_YEARS = 1.0
#: A face this many original pixels on its short side, or more, gets full weight.
FULL_WEIGHT_FACE_PX = 64.0
#: The weight of a body without a face (MiVOLO estimates from the body alone are weaker).
BODY_ONLY_FACTOR = 0.5


@dataclass(frozen=True)
class AggregationReport:
    people: int
    with_birth_year: int
    with_gender: int

    def as_dict(self) -> dict[str, int]:
        return {"people": self.people, "with_birth_year": self.with_birth_year, "with_gender": self.with_gender}


def sample_weight(sample: PersonSample) -> float:
    confidence = 0.5 if sample.detection_confidence is None else float(sample.detection_confidence)
    if sample.face_short_side is None:
        return max(confidence, 0.0) * BODY_ONLY_FACTOR
    return max(confidence, 0.0) * min(1.0, float(sample.face_short_side) / FULL_WEIGHT_FACE_PX)


def fractional_year(moment: datetime) -> float:
    start = datetime(moment.year, 1, 1)
    length = (datetime(moment.year + 1, 1, 1) - start).total_seconds()
    return moment.year + (moment.replace(tzinfo=None) - start).total_seconds() / length


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def robust_location(values: Sequence[float], weights: Sequence[float]) -> tuple[float, float] | None:
    """(Tukey biweight location, weighted spread around it), or None without any weight."""
    x = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    keep = w > 0
    x, w = x[keep], w[keep]
    if x.size == 0:
        return None
    centre = weighted_median(x, w)
    scale = max(MAD_TO_SIGMA * weighted_median(np.abs(x - centre), w), MIN_SCALE_YEARS)
    robust = w
    for _ in range(50):
        u = (x - centre) / (BIWEIGHT_C * scale)
        robust = w * np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0)
        if robust.sum() <= 0:
            break
        moved = float((robust * x).sum() / robust.sum())
        if abs(moved - centre) < 1e-4:
            centre = moved
            break
        centre = moved
    if robust.sum() <= 0:
        robust = w
    spread = math.sqrt(float((robust * (x - centre) ** 2).sum() / robust.sum()))
    return centre, spread


def gender_vote(samples: Sequence[PersonSample], min_confidence: float) -> tuple[str | None, float | None]:
    votes = {"M": 0.0, "F": 0.0}
    for sample in samples:
        if sample.gender in votes and sample.gender_confidence is not None:
            votes[sample.gender] += sample_weight(sample) * float(sample.gender_confidence)
    total = votes["M"] + votes["F"]
    if total <= 0:
        return None, None
    winner = "M" if votes["M"] >= votes["F"] else "F"
    share = votes[winner] / total
    return (winner if share >= min_confidence else "U"), share


def aggregate_person(person_id: int, samples: Sequence[PersonSample], min_confidence: float) -> PersonAgeGender:
    dated = [s for s in samples if s.age is not None and s.captured_at is not None]
    location = robust_location(
        [fractional_year(s.captured_at) - float(s.age) for s in dated if s.captured_at is not None],
        [sample_weight(s) for s in dated],
    )
    gender, confidence = gender_vote(samples, min_confidence)
    birth_year = None if location is None else round(location[0])
    stddev = None if location is None else location[1]
    return PersonAgeGender(person_id, birth_year, stddev, gender, confidence, len(samples))


def aggregate_people(
    db: Database, collection_id: int | None, *, min_confidence: float, person_ids: Sequence[int] | None = None
) -> AggregationReport:
    """Recompute every person of the collection (None: all), or only `person_ids` (persons whose
    faces just changed), in one transaction."""
    with db.connection() as conn, conn.transaction():
        return aggregate_people_in(conn, collection_id, min_confidence=min_confidence, person_ids=person_ids)


def refresh_persons(
    conn: psycopg.Connection, collection_id: int, person_ids: Sequence[int], settings: Settings
) -> AggregationReport:
    """After a decision by hand gave faces to persons or took faces from them (a link, a merge, a
    move, a split): their birth years and genders, and the estimated years of the undated photos
    they are or were in, in the decision's transaction, instead of at the next weekly run."""
    return aggregate_people_in(
        conn, collection_id, min_confidence=settings.age_gender_gender_min_confidence, person_ids=person_ids
    )


def aggregate_people_in(
    conn: psycopg.Connection,
    collection_id: int | None,
    *,
    min_confidence: float,
    person_ids: Sequence[int] | None = None,
) -> AggregationReport:
    """aggregate_people inside the caller's transaction (maintenance tasks run in their own)."""
    people = person_sql.person_ids(conn, collection_id, person_ids)
    by_person: dict[int, list[PersonSample]] = defaultdict(list)
    for sample in person_sql.samples(conn, people):
        by_person[sample.person_id].append(sample)
    results = [aggregate_person(pid, by_person.get(pid, []), min_confidence) for pid in people]
    person_sql.store(conn, results)
    # birth years moved: re-date the undated photos (of these persons only, when only they changed)
    photo_dates.estimate_photo_dates_in(conn, collection_id, person_ids=person_ids)
    return AggregationReport(
        people=len(results),
        with_birth_year=sum(r.birth_year is not None for r in results),
        with_gender=sum(r.gender is not None for r in results),
    )
