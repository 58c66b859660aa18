"""Places: offline reverse geocoding of photo GPS (`geocoder`) and the backfill of stored photos."""

from photodb.places.geocoder import Place, PlaceIndex, PlacesUnavailable, place_for, place_index

__all__ = ["Place", "PlaceIndex", "PlacesUnavailable", "place_for", "place_index"]
