"""age_gender_aggregator: each person's birth year and gender from the estimates of their detections.

- Birth year: every detection with an age estimate and a photo with a capture date gives one
  sample, (capture date as a fractional year) - age. Photos without a date are left out. The
  estimate is a weighted Tukey biweight M-estimate of location: it starts at the weighted median,
  takes the scale from the weighted median absolute deviation (x 1.4826, at least one year), and
  reweights until it settles; samples more than 4.685 scales away get weight zero, nearer ones
  are down-weighted smoothly, so a child mistaken for the person or a wrong date does not drag
  the year. birth_year_stddev is the weighted standard deviation of the samples around the
  estimate, with those robustness weights.
- Gender: a confidence-weighted vote over calibrated per-face probabilities. A face's stored
  probability is softened on the log-odds scale (temperature FACE_TEMPERATURE, after capping the
  model's logit), since models are overconfident and no single face is certain; the face then
  gives its weight times that probability to its gender and the rest of its weight to the other.
  The two sums, plus Jeffreys' half a face each, are a Beta posterior over the share of this
  person's faces that read as the winner; the confidence is the posterior probability that this
  share is over one half. So one photo never gives 1.0, agreeing faces raise the confidence
  towards 1, and a disagreeing minority lowers it; 'U' below the floor.
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
#: A face's gender log-odds are divided by this before voting (models are overconfident).
FACE_TEMPERATURE = 1.5
#: The largest log-odds a model's gender probability counts for (probability 0.999).
MAX_FACE_LOGIT = math.log(999.0)
#: Jeffreys' prior: half a face's weight for each gender in every vote.
PRIOR_PER_GENDER = 0.5


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


def calibrated_probability(confidence: float) -> float:
    """The probability a face's gender answer counts for: strictly between 0.5 and 1."""
    p = min(max(float(confidence), 0.5), 1.0)
    logit = MAX_FACE_LOGIT if p >= 1.0 else min(math.log(p / (1.0 - p)), MAX_FACE_LOGIT)
    return 1.0 / (1.0 + math.exp(-logit / FACE_TEMPERATURE))


def beta_upper_half(a: float, b: float) -> float:
    """P(X > 1/2) for X ~ Beta(a, b), from the regularized incomplete beta function's continued
    fraction, taken on the side where it converges (I_x(p, q) for x below (p + 1) / (p + q + 2))."""
    front = math.exp((a + b) * math.log(0.5) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))
    if a >= b:
        return 1.0 - front * _beta_fraction(a, b, 0.5) / a
    return front * _beta_fraction(b, a, 0.5) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Lentz's evaluation of the incomplete beta continued fraction."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-12:
            break
    return fraction


def gender_vote(samples: Sequence[PersonSample], min_confidence: float) -> tuple[str | None, float | None]:
    votes = {"M": 0.0, "F": 0.0}
    for sample in samples:
        if sample.gender in votes and sample.gender_confidence is not None:
            weight = sample_weight(sample)
            agreeing = calibrated_probability(sample.gender_confidence)
            other = "F" if sample.gender == "M" else "M"
            votes[sample.gender] += weight * agreeing
            votes[other] += weight * (1.0 - agreeing)
    if votes["M"] + votes["F"] <= 0:
        return None, None
    winner = "M" if votes["M"] >= votes["F"] else "F"
    loser = "F" if winner == "M" else "M"
    confidence = beta_upper_half(votes[winner] + PRIOR_PER_GENDER, votes[loser] + PRIOR_PER_GENDER)
    return (winner if confidence >= min_confidence else "U"), confidence


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
