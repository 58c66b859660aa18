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
