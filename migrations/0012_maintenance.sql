-- Maintenance (photodb.maintenance): who made a cluster ('auto:<task>' for what maintenance
-- creates, e.g. the singleton clusters of old unassigned faces; NULL for bootstrap clusters), and
-- an index for the unassigned pool, which the weekly cleanup selects by age.
ALTER TABLE cluster ADD COLUMN created_by TEXT;
CREATE INDEX idx_person_detection_unassigned_since ON person_detection(unassigned_since)
    WHERE cluster_id IS NULL AND unassigned_since IS NOT NULL;
