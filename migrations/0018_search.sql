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
