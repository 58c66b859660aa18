-- Cluster centroids as an exact running sum (photodb.database.clustering.centroids): centroid_sum
-- is the unnormalised sum of the member embeddings, so adding, removing and recounting a face are
-- the same operation; centroid, the unit vector the HNSW index searches, follows from it and is
-- rewritten only when it moves by more than a tiny tolerance.
ALTER TABLE cluster ADD COLUMN centroid_sum VECTOR(512);

-- The sum stays in the heap row (never TOASTed), so an assignment writes no TOAST chunk, and while
-- the indexed centroid is unchanged the update is HOT: no new HNSW entry. fillfactor leaves room on
-- the page for the new row version; vacuum runs early because every centroid that does move leaves
-- a dead HNSW entry behind.
ALTER TABLE cluster ALTER COLUMN centroid_sum SET STORAGE PLAIN;
ALTER TABLE cluster SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.05
);

UPDATE cluster c SET face_count = s.n, centroid_sum = s.total,
    centroid = CASE WHEN s.total IS NULL THEN NULL ELSE l2_normalize(s.total) END
FROM (SELECT k.id, count(fe.person_detection_id) AS n, sum(fe.embedding) AS total
      FROM cluster k
      LEFT JOIN person_detection d ON d.cluster_id = k.id
      LEFT JOIN face_embedding fe ON fe.person_detection_id = d.id
      GROUP BY k.id) s
WHERE c.id = s.id;

-- Deleting a detection (a detection rerun) clears the medoid and representative links that point
-- at it: without these indexes each deleted face meant a scan of every cluster.
CREATE INDEX idx_cluster_medoid ON cluster(medoid_detection_id);
CREATE INDEX idx_cluster_representative ON cluster(representative_detection_id);

-- Every centroid that moves is a new HNSW entry, written inside an assignment's transaction: a
-- sparser graph over the (thousands of) centroids makes that insert about half as costly, and with
-- ef_search 40 and strict-order iterative scans the five nearest centroids are still found.
DROP INDEX idx_cluster_centroid;
CREATE INDEX idx_cluster_centroid ON cluster USING hnsw (centroid vector_cosine_ops)
    WITH (m = 8, ef_construction = 32);
