-- People after indexing: each collection's record of how far its persons were brought up to date.
-- A process that added faces bumps `requested`; the one process holding the refresh lock works
-- until `refreshed` has caught up with it, and `detection_watermark` is the highest detection id
-- its last refresh saw (the clusters of later detections are the ones that changed since).
CREATE TABLE people_refresh (
    collection_id       BIGINT PRIMARY KEY REFERENCES collection(id) ON DELETE CASCADE,
    requested           BIGINT NOT NULL DEFAULT 0,
    refreshed           BIGINT NOT NULL DEFAULT 0,
    detection_watermark BIGINT NOT NULL DEFAULT 0,
    refreshed_at        TIMESTAMPTZ,
    refreshed_by        TEXT
);
