-- photodb people: who hid a person or cluster and who named a person, who moved a face by hand
-- ('user' or a user-given name; 'auto:<task>' for automatic work), the index that finds a
-- person's cluster-level rejections when persons merge, and two covering indexes for `people list`
-- and `show`: a cluster's faces with their photo and age, and a photo's capture date, read without
-- visiting the tables (both columns already sit in indexes, so updates that were HOT stay HOT).
ALTER TABLE person ADD COLUMN named_by TEXT;
ALTER TABLE person ADD COLUMN hidden_by TEXT;
ALTER TABLE person ADD COLUMN hidden_at TIMESTAMPTZ;
ALTER TABLE cluster ADD COLUMN hidden_by TEXT;
ALTER TABLE cluster ADD COLUMN hidden_at TIMESTAMPTZ;
ALTER TABLE person_detection ADD COLUMN assigned_by TEXT;
CREATE INDEX idx_cluster_person_cannot_link_person ON cluster_person_cannot_link(person_id);
CREATE INDEX idx_person_detection_cluster_faces ON person_detection (cluster_id) INCLUDE (photo_id, age_estimate, id);
CREATE INDEX idx_metadata_photo_captured ON metadata (photo_id) INCLUDE (captured_at);
