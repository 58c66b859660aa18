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
