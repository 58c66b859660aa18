"""check-staleness: new faces, parameter drift and model change, through the function and the CLI."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from photodb.cli_maintenance import main
from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.staleness import check_staleness
from tests.clustering.conftest import insert


def test_staleness_report(db, settings, faces, monkeypatch):
    insert(db, faces.embeddings[:400])
    (before,) = check_staleness(db)
    assert before.rebootstrap and before.run_id is None
    bootstrap(db)
    (fresh,) = check_staleness(db)
    assert not fresh.rebootstrap and fresh.new_faces == 0
    insert(db, faces.embeddings[400:])
    (stale,) = check_staleness(db)
    assert stale.new_faces == 300 and stale.new_share == 0.75 and stale.rebootstrap
    db.settings.hdbscan_min_cluster_size = 5
    (drift,) = check_staleness(db)
    assert "min_cluster_size" in drift.parameter_drift
    insert(db, np.eye(512, dtype=np.float32)[:3], "dlib")
    reports = {r.embedding_model: r for r in check_staleness(db)}
    assert "embedding model changed" in reports["dlib"].reasons[0]

    monkeypatch.setenv("DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("PHOTODB_HOME", str(settings.photodb_home))
    result = CliRunner().invoke(main, ["check-staleness", "--json", "--collection", "default"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["rebootstrap"] is True
