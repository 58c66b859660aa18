"""The one face distance table: every rule has an entry for every packaged embedder, the older
settings keep overriding their rule, FACE_DISTANCES overrides any, and bad values stop the command."""

from __future__ import annotations

import pytest

from photodb.clustering.distances import MEASURED, RULES, face_distance
from photodb.config import Settings, load_settings
from photodb.config_errors import ConfigurationError

PACKAGED = ("arcface:w600k_mbf", "sface:2021dec", "dlib:resnet_v1")


def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_every_rule_has_a_measured_entry_for_every_packaged_embedder():
    for model in PACKAGED:
        row = MEASURED.get(model) or MEASURED[model.split(":")[0]]
        assert set(row) == set(RULES), model
        for rule in RULES:
            assert face_distance(settings(), model, rule) == row[rule]
    # a pair of single faces is the riskiest join: its distance is the strictest of a model
    for model in PACKAGED:
        assert face_distance(settings(), model, "pair") <= face_distance(settings(), model, "merge")


def test_w600k_r50_and_unknown_models_read_the_older_settings(monkeypatch: pytest.MonkeyPatch):
    for model in ("arcface:w600k_r50", "someday:model"):
        assert face_distance(settings(), model, "assign") == 0.45  # CLUSTERING_THRESHOLD
        assert face_distance(settings(), model, "associate") == 0.8  # PERSON_ASSOCIATION_THRESHOLD
        assert face_distance(settings(), model, "merge") == MEASURED["arcface:w600k_r50"]["merge"]
    monkeypatch.setenv("CLUSTERING_THRESHOLD", "0.4")
    monkeypatch.setenv("PERSON_ASSOCIATION_THRESHOLD", "0.7")
    assert face_distance(settings(), "arcface:w600k_r50", "assign") == 0.4
    assert face_distance(settings(), "someday:model", "associate") == 0.7


def test_settings_override_the_table_by_name_then_family(monkeypatch: pytest.MonkeyPatch):
    dlib_merge = face_distance(settings(), "dlib:resnet_v1", "merge")
    monkeypatch.setenv("CLUSTERING_THRESHOLD_DLIB", "0.08")
    monkeypatch.setenv("CLUSTERING_THRESHOLDS", '{"sface": 0.4}')
    monkeypatch.setenv("PERSON_ASSOCIATION_THRESHOLDS", '{"dlib": 0.05}')
    monkeypatch.setenv("FACE_DISTANCES", '{"sface:2021dec": {"assign": 0.3}, "sface": {"merge": 0.5, "assign": 0.2}}')
    tuned = settings()
    assert face_distance(tuned, "dlib:resnet_v1", "assign") == 0.08
    assert face_distance(tuned, "dlib:resnet_v1", "associate") == 0.05
    assert face_distance(tuned, "dlib:resnet_v1", "merge") == dlib_merge  # untouched rules keep the table's
    assert face_distance(tuned, "sface:2021dec", "assign") == 0.3  # the full name wins over the family
    assert face_distance(tuned, "sface:2021dec", "merge") == 0.5


@pytest.mark.parametrize(
    "value", ['{"dlib": {"merge": 0}}', '{"dlib": {"merge": 2.5}}', '{"dlib": {"nearby": 0.1}}', '{"dlib": 0.1}']
)
def test_a_bad_face_distance_stops_the_command_naming_the_setting(monkeypatch: pytest.MonkeyPatch, value: str):
    monkeypatch.setenv("FACE_DISTANCES", value)
    with pytest.raises(ConfigurationError, match="FACE_DISTANCES"):
        load_settings(_env_file=None)
