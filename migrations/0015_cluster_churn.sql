-- Centroid churn (issue 10). In a cluster of a few dozen faces nearly every assignment moves the
-- centroid beyond the write tolerance, so most assignments are non-HOT updates: a new heap
-- version, a new TOAST value for the centroid and a new HNSW entry, all dead until vacuum removes
-- them; after that their space is reused. What the table and index grow by is therefore what
-- accumulates between two vacuums: vacuum after a few hundred dead versions (a TOASTed centroid
-- is two chunks), not a thousand. How often autovacuum looks at all is the server's
-- autovacuum_naptime (the embedded server sets it: photodb.database.embedded.SERVER_SETTINGS).
ALTER TABLE cluster SET (
    autovacuum_vacuum_threshold = 200,
    toast.autovacuum_vacuum_threshold = 400
);
