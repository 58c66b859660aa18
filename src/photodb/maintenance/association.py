"""Auto-association as a weekly maintenance task (the logic is people.association)."""

from __future__ import annotations

import psycopg

from photodb.config import Settings
from photodb.maintenance.tasks import Options, Outcome, lock_collection_models
from photodb.people.association import associate_collection_in


def auto_associate(conn: psycopg.Connection, settings: Settings, collection_id: int, options: Options) -> Outcome:
    reports = associate_collection_in(conn, settings, collection_id, lock_collection_models(conn, collection_id))
    return Outcome(
        changes={
            "persons_created": sum(r.persons_created for r in reports),
            "clusters_linked": sum(r.clusters_linked for r in reports),
            "persons_merged": sum(r.persons_merged for r in reports),
            "lone_persons_created": sum(r.lone_persons_created for r in reports),
            # left for a person to decide (`photodb maintenance auto-associate --dry-run` lists them);
            # not problems: a weekly cron job should not fail on them every week
            "groups_not_joined": sum(len(r.conflicts) for r in reports),
        },
    )
