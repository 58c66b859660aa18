-- photodb people: who hid a person or cluster and who named a person, who moved a face by hand
-- ('user' or a user-given name; 'auto:<task>' for automatic work), and the index that finds a
-- person's cluster-level rejections when persons merge.
ALTER TABLE person ADD COLUMN named_by TEXT;
ALTER TABLE person ADD COLUMN hidden_by TEXT;
ALTER TABLE person ADD COLUMN hidden_at TIMESTAMPTZ;
ALTER TABLE cluster ADD COLUMN hidden_by TEXT;
ALTER TABLE cluster ADD COLUMN hidden_at TIMESTAMPTZ;
ALTER TABLE person_detection ADD COLUMN assigned_by TEXT;
CREATE INDEX idx_cluster_person_cannot_link_person ON cluster_person_cannot_link(person_id);
