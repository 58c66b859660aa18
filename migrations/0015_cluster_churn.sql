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
