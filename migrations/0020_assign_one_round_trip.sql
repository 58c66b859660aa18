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
