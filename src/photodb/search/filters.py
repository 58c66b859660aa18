"""Search filters: each one a predicate on a photo, composed with psycopg.sql and bound by name.

Every filter reads the aliases the statement gives it: `p` (photo) and `m` (metadata, left
joined: a photo without metadata has NULLs there). Values never enter the SQL text: a filter
asks `Params` for a placeholder and the value travels with the statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

from psycopg import sql

#: Mean Earth radius (IUGG), for the haversine distance of --near.
EARTH_RADIUS_KM = 6371.0088


class Params:
    """The values of one statement, each under a generated name (%(p0)s, %(p1)s, ...)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any, cast: str | None = None) -> sql.Composable:
        name = f"p{len(self.values)}"
        self.values[name] = value
        placeholder = sql.Placeholder(name)
        return sql.SQL("{}::{}").format(placeholder, sql.SQL(cast)) if cast else placeholder


class Filter(Protocol):
    def where(self, params: Params) -> sql.Composable:
        """A boolean SQL expression over `p` and `m`."""
        ...


def conditions(filters: Sequence[Filter], params: Params, *, behind_vector_scan: bool) -> sql.Composable:
    """Every filter's condition, ANDed. Filters that can name their photos as id sets (`id_sets`:
    persons, date ranges) give one `p.id IN (a INTERSECT b ...)`: one hashed set operation, where
    separate INs made the planner look up each id of the largest set (two persons + 6 years on
    the 100k bench: 16.8k person photos and 25k dated ones). Behind a vector scan each filter is
    checked per row instead: the scan yields few rows, and an id set would be read whole."""
    sets: list[sql.Composable] = []
    rows: list[sql.Composable] = []
    for search_filter in filters:
        id_sets = getattr(search_filter, "id_sets", None)
        named = [] if behind_vector_scan or id_sets is None else id_sets(params)
        if named:
            sets += named
        else:
            rows.append(search_filter.where(params))
    if sets:
        rows.insert(0, sql.SQL("p.id IN ({})").format(sql.SQL(" INTERSECT ").join(_parenthesised(sets))))
    return sql.SQL(" AND ").join(_parenthesised(rows)) if rows else sql.SQL("TRUE")


def _parenthesised(parts: list[sql.Composable]) -> list[sql.Composable]:
    return [sql.SQL("({})").format(part) for part in parts]


@dataclass(frozen=True)
class HiddenFaces:
    """The hidden persons, and the hidden clusters with those of hidden persons: a face is hidden
    when its own person is among the first, or it has none and its cluster is among the second
    (FACE_SHOWN's rule as arrays, a cheap check on each face a vector scan yields)."""

    person_ids: tuple[int, ...] = ()
    cluster_ids: tuple[int, ...] = ()

    def shown(self, params: Params) -> sql.Composable:
        if not self.person_ids and not self.cluster_ids:
            return sql.SQL("TRUE")
        return sql.SQL(
            "NOT COALESCE(d.person_id = ANY({persons}), false) "
            "AND NOT (d.person_id IS NULL AND COALESCE(d.cluster_id = ANY({clusters}), false))"
        ).format(persons=params(list(self.person_ids), "bigint[]"), clusters=params(list(self.cluster_ids), "bigint[]"))


def like_pattern(term: str) -> str:
    """`term` as an ILIKE pattern matching it anywhere, its own % and _ taken literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


#: A face `d` whose identity is shown: neither its person (its own, else its cluster's) is hidden,
#: nor, when it has no person of its own, its cluster. Faces of hidden persons and clusters do
#: not surface them in searches; their photos are found by every other filter.
FACE_SHOWN = sql.SQL(
    "NOT EXISTS (SELECT 1 FROM person hp WHERE hp.id = d.person_id AND hp.hidden) "
    "AND (d.person_id IS NOT NULL OR NOT EXISTS (SELECT 1 FROM cluster hk LEFT JOIN person hp ON hp.id = hk.person_id "
    "WHERE hk.id = d.cluster_id AND (hk.hidden OR COALESCE(hp.hidden, false))))"
)


def _photo_ids_of_persons(match: sql.Composable) -> sql.Composable:
    """Ids of photos with a face of the (shown) persons `match` (`= x` or `= ANY(xs)`) selects:
    through the face's own person_id, or, when it has none, its cluster's unless that cluster is
    hidden (the aggregator's rule). Index lookups (idx_person_detection_person_photo; idx_cluster_person,
    then idx_person_detection_cluster_faces) instead of COALESCE over every face."""
    return sql.SQL(
        "SELECT d.photo_id FROM person_detection d WHERE d.person_id {match} "
        "UNION ALL SELECT d.photo_id FROM cluster k JOIN person_detection d ON d.cluster_id = k.id "
        "WHERE k.person_id {match} AND NOT k.hidden AND d.person_id IS NULL"
    ).format(match=match)


def _photo_ids_of_clusters(match: sql.Composable) -> sql.Composable:
    return sql.SQL("SELECT d.photo_id FROM person_detection d WHERE d.cluster_id {}").format(match)


@dataclass(frozen=True)
class People:
    """Photos showing persons (by id) and unnamed clusters: all of them together, or any of them.
    The service only names shown persons and clusters (hidden ones are refused by name and id)."""

    person_ids: tuple[int, ...] = ()
    cluster_ids: tuple[int, ...] = ()
    any_of: bool = False

    def id_sets(self, params: Params) -> list[sql.Composable]:
        """The photo ids of each person and cluster (all of them), or of any of them (one set)."""
        if self.any_of:
            anyone: list[sql.Composable] = []
            if self.person_ids:
                anyone.append(_photo_ids_of_persons(sql.SQL("= ANY({})").format(params(list(self.person_ids)))))
            if self.cluster_ids:
                anyone.append(_photo_ids_of_clusters(sql.SQL("= ANY({})").format(params(list(self.cluster_ids)))))
            return [sql.SQL(" UNION ALL ").join(anyone)]
        everyone = [_photo_ids_of_persons(sql.SQL("= {}").format(params(person))) for person in self.person_ids]
        everyone += [_photo_ids_of_clusters(sql.SQL("= {}").format(params(cluster))) for cluster in self.cluster_ids]
        return everyone

    def where(self, params: Params) -> sql.Composable:
        return sql.SQL("p.id IN ({})").format(sql.SQL(" INTERSECT ").join(_parenthesised(self.id_sets(params))))


def _fractional_year(day: date) -> float:
    """The start of `day` as a fractional year, the scale of photo_date_estimate.estimated_year."""
    first = date(day.year, 1, 1)
    return day.year + (day - first).days / (date(day.year + 1, 1, 1) - first).days


@dataclass(frozen=True)
class CapturedBetween:
    """Captured on or after `start` and on or before `end` (whole days; either may be open).

    A photo without a capture date matches when its estimated year from faces, as the window
    estimated_year ± stddev_years, overlaps the range [start, end + 1 day) in fractional years.
    Two forms (build_search picks): a per-row predicate behind a vector scan, a union of ids
    served by idx_metadata_captured_at where the ranking reads every filtered row.
    """

    start: date | None = None
    end: date | None = None

    def _bounds(self, params: Params, captured_at: str) -> tuple[list[sql.Composable], list[sql.Composable]]:
        """The conditions on `captured_at` and on an estimate `e`."""
        captured: list[sql.Composable] = []
        estimated: list[sql.Composable] = []
        if self.start is not None:
            captured.append(sql.SQL("{} >= {}").format(sql.SQL(captured_at), params(self.start, "timestamp")))
            estimated.append(
                sql.SQL("e.estimated_year + e.stddev_years >= {}").format(
                    params(_fractional_year(self.start), "float8")
                )
            )
        if self.end is not None:
            following = self.end + timedelta(days=1)
            captured.append(sql.SQL("{} < {}").format(sql.SQL(captured_at), params(following, "timestamp")))
            estimated.append(
                sql.SQL("e.estimated_year - e.stddev_years < {}").format(params(_fractional_year(following), "float8"))
            )
        return captured, estimated

    def _condition(self, params: Params, captured_at: str, form: str) -> sql.Composable:
        captured, estimated = self._bounds(params, captured_at)
        if not captured:
            return sql.SQL("m.captured_at IS NOT NULL")
        both = sql.SQL(" AND ")
        return sql.SQL(form).format(captured=both.join(captured), estimated=both.join(estimated))

    def where(self, params: Params) -> sql.Composable:
        """Per row: cheap on each candidate a vector scan yields."""
        return self._condition(params, "m.captured_at", _DATED_OR_ESTIMATED_ROW)

    def id_sets(self, params: Params) -> list[sql.Composable]:
        """As a set of photo ids (the capture-date index's range, then the estimates) for a ranking
        that reads every filtered row: the per-row OR makes it read every photo instead. No set for
        a range open at both ends (every dated photo)."""
        if self.start is None and self.end is None:
            return []
        return [self._condition(params, "dm.captured_at", _DATED_OR_ESTIMATED_IDS)]


_DATED_OR_ESTIMATED_ROW = (
    "({captured}) OR (m.captured_at IS NULL AND EXISTS "
    "(SELECT 1 FROM photo_date_estimate e WHERE e.photo_id = p.id AND {estimated}))"
)
_DATED_OR_ESTIMATED_IDS = (
    "SELECT dm.photo_id FROM metadata dm WHERE {captured} "
    "UNION ALL SELECT e.photo_id FROM photo_date_estimate e WHERE {estimated} AND NOT EXISTS "
    "(SELECT 1 FROM metadata em WHERE em.photo_id = e.photo_id AND em.captured_at IS NOT NULL)"
)


@dataclass(frozen=True)
class CapturedMonth:
    """Captured in this month of any year (a month of one year is a CapturedBetween)."""

    month: int

    def where(self, params: Params) -> sql.Composable:
        return sql.SQL("EXTRACT(MONTH FROM m.captured_at) = {}").format(params(self.month))


@dataclass(frozen=True)
class CapturedOnDay:
    """Captured on this day of the year, in any year ("on this day")."""

    month: int
    day: int

    def where(self, params: Params) -> sql.Composable:
        return sql.SQL("EXTRACT(MONTH FROM m.captured_at) = {} AND EXTRACT(DAY FROM m.captured_at) = {}").format(
            params(self.month), params(self.day)
        )


@dataclass(frozen=True)
class Camera:
    """Camera make or model containing the term (any case), e.g. "iphone" or "Canon EOS"."""

    term: str

    def where(self, params: Params) -> sql.Composable:
        return sql.SQL("CONCAT_WS(' ', m.camera_make, m.camera_model) ILIKE {}").format(params(like_pattern(self.term)))


@dataclass(frozen=True)
class Near:
    """Taken within `radius_km` of a point (haversine on the GPS position), a latitude band first."""

    latitude: float
    longitude: float
    radius_km: float

    def where(self, params: Params) -> sql.Composable:
        lat, lon = params(self.latitude, "float8"), params(self.longitude, "float8")
        band = self.radius_km / EARTH_RADIUS_KM * 57.29577951308232  # degrees of latitude
        return sql.SQL(
            "m.latitude BETWEEN {low} AND {high} AND 2 * {r} * ASIN(SQRT(LEAST(1, "
            "POWER(SIN(RADIANS(m.latitude - {lat}) / 2), 2) + COS(RADIANS({lat})) * COS(RADIANS(m.latitude)) "
            "* POWER(SIN(RADIANS(m.longitude - {lon}) / 2), 2)))) <= {radius}"
        ).format(
            low=params(self.latitude - band, "float8"),
            high=params(self.latitude + band, "float8"),
            r=params(EARTH_RADIUS_KM, "float8"),
            lat=lat,
            lon=lon,
            radius=params(self.radius_km, "float8"),
        )


@dataclass(frozen=True)
class Place:
    """A country, region or city name (any case) or a country code where the photo was taken
    (photo_place, filled by the metadata stage and `photodb places backfill`)."""

    name: str

    def where(self, params: Params) -> sql.Composable:
        value = params(self.name)
        return sql.SQL(
            """EXISTS (SELECT 1 FROM photo_place pl WHERE pl.photo_id = p.id
                   AND (lower(pl.country) = lower({v}) OR lower(pl.region) = lower({v})
                        OR lower(pl.city) = lower({v}) OR pl.country_code = upper({v})))"""
        ).format(v=value)


@dataclass(frozen=True)
class SceneTags:
    """Every label tagged on the photo (scene, taxonomy or object tags)."""

    labels: tuple[str, ...]

    def where(self, params: Params) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("EXISTS (SELECT 1 FROM photo_tag t WHERE t.photo_id = p.id AND t.label = {})").format(params(label))
            for label in self.labels
        )


@dataclass(frozen=True)
class FaceTags:
    """Every label tagged on a face of the photo (expression, emotion, gaze ...)."""

    labels: tuple[str, ...]

    def where(self, params: Params) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL(
                "EXISTS (SELECT 1 FROM detection_tag t JOIN person_detection d ON d.id = t.person_detection_id "
                "WHERE d.photo_id = p.id AND t.label = {})"
            ).format(params(label))
            for label in self.labels
        )


@dataclass(frozen=True)
class Words:
    """A web-search style query (`"exact phrase"`, `or`, `-word`) over the LLM analyses' words."""

    query: str
    language: str

    def tsquery(self, params: Params) -> sql.Composable:
        return sql.SQL("websearch_to_tsquery({}, {})").format(params(self.language, "regconfig"), params(self.query))

    def where(self, params: Params) -> sql.Composable:
        return sql.SQL(
            "EXISTS (SELECT 1 FROM llm_analysis a WHERE a.photo_id = p.id AND a.search_vector @@ {})"
        ).format(self.tsquery(params))


@dataclass(frozen=True)
class InCollection:
    collection_id: int

    def where(self, params: Params) -> sql.Composable:
        return sql.SQL("p.collection_id = {}").format(params(self.collection_id))


@dataclass(frozen=True)
class NotPhoto:
    """Leaves out the photo a "like this photo" search started from."""

    photo_id: int

    def where(self, params: Params) -> sql.Composable:
        return sql.SQL("p.id <> {}").format(params(self.photo_id))
