-- People: who made each identity decision, hidden persons, reviewed match candidates.
-- created_by / linked_by / reviewed_by hold 'user' (or a user-given name) for a person's
-- decision and 'auto:<task>' for what maintenance decided, so a re-run never overrides a person.
ALTER TABLE person ADD COLUMN hidden BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE person ADD COLUMN created_by TEXT;
ALTER TABLE cluster ADD COLUMN person_linked_by TEXT;
ALTER TABLE cluster ADD COLUMN person_linked_at TIMESTAMPTZ;
ALTER TABLE cluster_cannot_link ADD COLUMN created_by TEXT;
ALTER TABLE cluster_person_cannot_link ADD COLUMN created_by TEXT;
ALTER TABLE face_match_candidate ADD COLUMN reviewed_by TEXT;
ALTER TABLE face_match_candidate ADD COLUMN reviewed_at TIMESTAMPTZ;
CREATE INDEX idx_cluster_cannot_link_2 ON cluster_cannot_link(cluster_id_2);
