-- `photodb people list` and `show`: a cluster's faces in photo order. The covering index of 0013
-- kept photo_id as a payload column, so every row of a listing sorted its faces to count their
-- distinct photos (5000 sorts for `list --clusters --limit 0` at 100k faces); with photo_id in the
-- key an index-only scan of one cluster yields them sorted and the count needs no sort. Same
-- columns as before, so it serves every lookup by cluster_id the old one did, and updates that
-- were HOT stay HOT.
DROP INDEX idx_person_detection_cluster_faces;
CREATE INDEX idx_person_detection_cluster_faces ON person_detection (cluster_id, photo_id) INCLUDE (age_estimate, id);
