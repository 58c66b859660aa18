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
