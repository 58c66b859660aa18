-- idx_person_detection_cluster_faces (0024) leads with cluster_id, so the single-column index of
-- 0001 serves no lookup it cannot; every assignment rewrites cluster_id (never a HOT update) and
-- paid one index insert more for it.
DROP INDEX idx_person_detection_cluster_id;
