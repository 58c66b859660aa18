"""Apple Vision off macOS: unavailable with one reason, and the top-k / threshold selection.

The Vision request itself runs only on macOS with pyobjc, which this Linux test machine has not:
these tests cover what runs everywhere (the unavailable path and the pure post-processing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from photodb.ml import apple_vision
from photodb.ml.apple_vision import AppleVisionClassifier, VisionLabel, top_labels, unavailable_reason
from photodb.ml.base import ModelUnavailable

OBSERVATIONS = [("sky", 0.91), ("outdoor", 0.97), ("beach", 0.40), ("sand", 0.40), ("dog", 0.05), ("cat", 0.0)]


def test_top_labels_keep_the_most_confident_above_the_threshold_best_first():
    assert top_labels(OBSERVATIONS, top_k=3, min_confidence=0.1) == [
        VisionLabel("outdoor", 0.97),
        VisionLabel("sky", 0.91),
        VisionLabel("beach", 0.40),  # tied with "sand": by name, the same on every run
    ]
    assert [label.identifier for label in top_labels(OBSERVATIONS, top_k=10, min_confidence=0.4)] == [
        "outdoor",
        "sky",
        "beach",
        "sand",
    ]
    assert top_labels(OBSERVATIONS, top_k=0, min_confidence=0.0) == []
    assert top_labels([], top_k=5, min_confidence=0.0) == []


@pytest.mark.skipif(sys.platform == "darwin", reason="the unavailable path is the one off macOS")
def test_off_macos_the_classifier_is_unavailable_with_one_reason(tmp_path: Path):
    classifier = AppleVisionClassifier()
    assert not classifier.available()
    assert (
        classifier.reason == unavailable_reason() == f"Apple Vision classification needs macOS (this is {sys.platform})"
    )
    with pytest.raises(ModelUnavailable, match=r"^Apple Vision classification needs macOS"):
        classifier.load()
    with pytest.raises(ModelUnavailable, match=r"^Apple Vision classification needs macOS"):
        classifier.classify(tmp_path / "photo.png")


def test_on_macos_without_pyobjc_the_reason_names_the_package(monkeypatch: pytest.MonkeyPatch):
    if sys.platform == "darwin":
        pytest.skip("this machine may have pyobjc")
    monkeypatch.setattr(apple_vision.sys, "platform", "darwin")
    assert unavailable_reason() == (
        "Apple Vision classification needs pyobjc's Vision bindings: pip install pyobjc-framework-Vision"
    )
