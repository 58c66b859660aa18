-- A pending (photo, stage) row whose earlier stage failed can never run until that failure is
-- re-queued. Claims used to scan such rows on every call; they now move to 'blocked', outside
-- the pending index, and back to 'pending' when the failed stage is re-queued.
ALTER TABLE processing_status DROP CONSTRAINT processing_status_status_check;
ALTER TABLE processing_status ADD CONSTRAINT processing_status_status_check
    CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'blocked'));
COMMENT ON COLUMN processing_status.claimed_by IS
    'host@machine:pid:start/thread of the worker holding (or that last settled) the claim';
