-- Enrichment (enrich-photos): a photo handed to a provider batch is 'submitted' (no lease: a batch
-- may take a day), held by 'batch:<batch_job.id>' so only that batch's results can settle it.
ALTER TABLE processing_status DROP CONSTRAINT processing_status_status_check;
ALTER TABLE processing_status ADD CONSTRAINT processing_status_status_check
    CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'blocked', 'skipped', 'submitted'));
ALTER TABLE processing_status ADD CONSTRAINT processing_status_submitted_holder
    CHECK (status <> 'submitted' OR claimed_by LIKE 'batch:%');
CREATE INDEX idx_processing_status_submitted ON processing_status(claimed_by) WHERE status = 'submitted';

-- Token counts include the prompt cache; costs are fractions of a cent for small batches.
ALTER TABLE batch_job ADD COLUMN total_cache_creation_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE batch_job ADD COLUMN total_cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE batch_job ADD COLUMN unknown_result_count INTEGER NOT NULL DEFAULT 0 CHECK (unknown_result_count >= 0);
ALTER TABLE batch_job ADD COLUMN freed_count INTEGER NOT NULL DEFAULT 0 CHECK (freed_count >= 0);
ALTER TABLE batch_job ADD COLUMN checked_at TIMESTAMPTZ;
ALTER TABLE batch_job ALTER COLUMN estimated_cost_cents TYPE NUMERIC(14, 4);
ALTER TABLE batch_job ALTER COLUMN actual_cost_cents TYPE NUMERIC(14, 4);
COMMENT ON COLUMN batch_job.provider_batch_id IS
    'the provider''s id (Anthropic message batch, Bedrock job ARN); stored before anything else after submitting';

-- One analysis per (photo, model): a rerun or a result fetched twice updates the same row.
ALTER TABLE llm_analysis ADD COLUMN provider TEXT CHECK (provider IN ('anthropic', 'bedrock'));
ALTER TABLE llm_analysis ADD COLUMN cost_cents NUMERIC(14, 4);
