"""Pipeline stages and the order process-local runs them in."""

from __future__ import annotations

import importlib

from photodb.stages.base import BaseStage

#: Processing order of the local stages (the spec's "detection -> scene_analysis -> age_gender").
PIPELINE_ORDER: tuple[str, ...] = ("normalize", "metadata", "detection", "scene_analysis", "age_gender")

#: Construction order (the spec's "init order age_gender -> scene_analysis -> detection"): a model
#: that may load CoreML (detection's YOLO) comes last, because on Apple Silicon loading CoreML
#: corrupts the Metal state of PyTorch models loaded after it.
INIT_ORDER: tuple[str, ...] = ("normalize", "metadata", "age_gender", "scene_analysis", "detection")

#: Stages that exist, as "module:Class", imported only when used so that ML libraries load lazily.
IMPLEMENTED_STAGES: dict[str, str] = {
    "normalize": "photodb.stages.normalize:NormalizeStage",
    "metadata": "photodb.stages.metadata:MetadataStage",
    "detection": "photodb.stages.detection:DetectionStage",
    "scene_analysis": "photodb.stages.scene_analysis:SceneAnalysisStage",
    "age_gender": "photodb.stages.age_gender:AgeGenderStage",
}


def implemented_stages() -> list[str]:
    return [name for name in PIPELINE_ORDER if name in IMPLEMENTED_STAGES]


def stage_class(name: str) -> type[BaseStage]:
    module_name, _, class_name = IMPLEMENTED_STAGES[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    assert issubclass(cls, BaseStage) and cls.name == name
    return cls
