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
