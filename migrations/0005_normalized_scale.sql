-- Normalized copies are capped at NORMALIZE_MAX_SIDE on top of RESIZE_SCALE, so the factor differs
-- per photo. Store it: a box in normalized pixels divided by normalized_scale is in original pixels.
ALTER TABLE photo ADD COLUMN normalized_scale DOUBLE PRECISION
    CHECK (normalized_scale > 0 AND normalized_scale <= 1);

-- Photos normalized before this column existed were scaled by RESIZE_SCALE alone: width ratio.
UPDATE photo SET normalized_scale = LEAST(1.0, normalized_width::double precision / width)
 WHERE normalized_width IS NOT NULL AND width IS NOT NULL;
