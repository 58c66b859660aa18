-- Dates from faces. A person's birth date, given by a user (`photodb people set-birthdate`); when
-- set it stands in for the aggregator's estimated_birth_year. birth_date_by says who set it.
ALTER TABLE person ADD COLUMN birth_date DATE, ADD COLUMN birth_date_by TEXT;
ALTER TABLE person ADD CONSTRAINT person_birth_date_by CHECK ((birth_date IS NULL) = (birth_date_by IS NULL));

-- An estimated capture year of a photo with no capture date, from the ages of the recognised
-- people in it and their birth years (photodb.people.dates). Kept apart from metadata.captured_at,
-- which only ever holds what the file says. estimated_year is a fractional year (1990.5 = mid
-- 1990); stddev_years its spread; persons the faces used: [{person_id, detection_id, year, stddev}].
CREATE TABLE photo_date_estimate (
    photo_id       BIGINT PRIMARY KEY REFERENCES photo(id) ON DELETE CASCADE,
    estimated_year DOUBLE PRECISION NOT NULL,
    stddev_years   DOUBLE PRECISION NOT NULL CHECK (stddev_years >= 0),
    source         TEXT NOT NULL DEFAULT 'faces' CHECK (source IN ('faces')),
    persons        JSONB NOT NULL,
    computed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Date searches look for estimates whose year window overlaps a range.
CREATE INDEX idx_photo_date_estimate_year ON photo_date_estimate(estimated_year);
