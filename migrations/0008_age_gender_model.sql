-- Which age/gender model produced a detection's estimate ('mivolo:d1', 'cydral:age-v1+gender-v1'),
-- so estimates of different models are never mistaken for each other, and when it ran.
ALTER TABLE person_detection ADD COLUMN age_gender_model TEXT;
ALTER TABLE person_detection ADD COLUMN age_gender_at TIMESTAMPTZ;
