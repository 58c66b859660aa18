-- The face a person's card shows, when the user chose one (`photodb people cover`, the person page).
-- Without a choice the page picks the sharpest frontal face; a deleted face falls back to that rule.
ALTER TABLE person ADD COLUMN cover_detection_id BIGINT REFERENCES person_detection(id) ON DELETE SET NULL;
