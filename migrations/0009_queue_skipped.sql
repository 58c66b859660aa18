-- A stage whose model is missing here cannot process a photo, and that is not the photo's fault:
-- its rows become 'skipped' with the reason in error_message (no attempt counted). Stages that
-- depend on it are not held back, and the next run that has the stage available, or --force,
-- puts the rows back to 'pending'.
ALTER TABLE processing_status DROP CONSTRAINT processing_status_status_check;
ALTER TABLE processing_status ADD CONSTRAINT processing_status_status_check
    CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'blocked', 'skipped'));
