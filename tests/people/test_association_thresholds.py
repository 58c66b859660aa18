"""Auto-association's per-model thresholds: looked up like the clustering ones, overridable, and
each between the same-person and different-people distances of the real sample faces."""

from __future__ import annotations

import pytest

from photodb.clustering.distances import face_distance
from photodb.config import Settings, load_settings
from photodb.config_errors import ConfigurationError
from photodb.ml.face_embedding import DlibEmbedder, FaceEmbedder, MobileFaceNetEmbedder, SFaceEmbedder
from tests.ml.test_face_embedding import SAME_PERSON, sample_embeddings


@pytest.mark.parametrize(
    "embedder", [MobileFaceNetEmbedder(force_cpu=True), SFaceEmbedder(), DlibEmbedder()], ids=["mbf", "sface", "dlib"]
)
def test_each_packaged_embedder_has_a_threshold_between_same_and_different_people(embedder: FaceEmbedder):
    vectors = sample_embeddings(embedder)
    threshold = face_distance(Settings(_env_file=None), embedder.model_name, "associate")  # type: ignore[call-arg]
    assert threshold != 0.8  # a measured entry, not the ArcFace w600k_r50 default
    names = list(vectors)
    same = [1 - vectors[a] @ vectors[b] for a, b in SAME_PERSON]
    different = [
        1 - vectors[a] @ vectors[b]
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if (a, b) not in SAME_PERSON and (b, a) not in SAME_PERSON
    ]
    assert max(same) < threshold < min(different)


def test_association_thresholds_per_model_and_their_overrides(monkeypatch: pytest.MonkeyPatch):
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert face_distance(defaults, "arcface:w600k_r50", "associate") == 0.8
    assert face_distance(defaults, "arcface:w600k_mbf", "associate") == 0.60
    assert face_distance(defaults, "sface:2021dec", "associate") == 0.53
    assert face_distance(defaults, "dlib:resnet_v1", "associate") == 0.049
    assert face_distance(defaults, "someday:model", "associate") == 0.8
    monkeypatch.setenv("PERSON_ASSOCIATION_THRESHOLDS", '{"dlib": 0.05, "arcface:w600k_mbf": 0.5}')
    monkeypatch.setenv("PERSON_ASSOCIATION_THRESHOLD", "0.7")
    tuned = Settings(_env_file=None)  # type: ignore[call-arg]
    assert face_distance(tuned, "dlib:resnet_v1", "associate") == 0.05
    assert face_distance(tuned, "arcface:w600k_mbf", "associate") == 0.5
    assert face_distance(tuned, "arcface:w600k_r50", "associate") == 0.7
    monkeypatch.setenv("PERSON_ASSOCIATION_THRESHOLDS", '{"dlib": -1}')
    with pytest.raises(ConfigurationError, match="PERSON_ASSOCIATION_THRESHOLDS"):
        load_settings(_env_file=None)
