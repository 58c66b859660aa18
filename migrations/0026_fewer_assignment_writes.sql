-- Fewer writes per incremental assignment (issue 10, §4: p95 within 2x the bare nearest-centroid
-- query). An assignment updates one cluster row and one person_detection row; measured on the 100k
-- bench, the server's part was p50 1.2 ms, of which most was index maintenance.
--
-- The centroid write tolerance, 1e-3 -> 2e-2 (cosine distance; an angle of 0.2 rad instead of
-- 0.045). A face moves the normalised sum of a cluster of n faces by about 1/n rad, so with 1e-3
-- every assignment to a cluster of under ~22 faces (most clusters of a bootstrap) rewrote the
-- centroid: a new HNSW entry (1-3 ms, more after a checkpoint) and an entry in each of the
-- cluster's five other indexes. With 2e-2 a cluster of 20 faces is rewritten every ~4 faces, one
-- of 5 or fewer still every time (the bench: 1.8 % of cluster updates instead of 4.7 % with 1e-2).
-- The stored centroid only finds candidates: tier 2 measures them against the exact sum, and every
-- reader that uses a distance as a value (association, the quality page, a person's nearest
-- cluster) reads centroid_sum, so a stale centroid can only reorder the HNSW candidates, by less
-- than the gap between two people's faces (cosine distance 0.5 and more with ArcFace).
CREATE OR REPLACE FUNCTION cluster_centroid_tolerance() RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 2e-2::double precision $$;

-- person_detection: every assignment rewrites cluster_id, an indexed column, so it is never a HOT
-- update and each index gets an entry. No query looks faces up by gender or age; lookups by
-- person_id use the partial (person_id, photo_id) index of 0018 (an equality implies NOT NULL),
-- which unlike the whole-column index holds no entry for the faces without one (nearly all). The
-- status index serves the pools that are looked for ('pending', 'unassigned', 'manual', ...):
-- automatically clustered faces, the bulk, need no entry. The cluster's faces without a person of
-- their own (0018's partial index) are read from the covering index of 0024 with person_id in it.
DROP INDEX idx_person_detection_gender;
DROP INDEX idx_person_detection_age;
DROP INDEX idx_person_detection_person;
DROP INDEX idx_person_detection_cluster_status;
CREATE INDEX idx_person_detection_cluster_status ON person_detection (cluster_status) WHERE cluster_status <> 'auto';
DROP INDEX idx_person_detection_cluster_photo;
DROP INDEX idx_person_detection_cluster_faces;
CREATE INDEX idx_person_detection_cluster_faces ON person_detection (cluster_id, photo_id)
    INCLUDE (age_estimate, id, person_id);
