-- The work queue turns over every row of processing_status at least twice per run. Each claim
-- scans the pending partial index in photo order, so index entries left behind by claimed rows
-- make later claims slower until vacuum removes them. Vacuum this table early and without delay.
ALTER TABLE processing_status SET (
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.05
);
