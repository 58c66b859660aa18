"""Small real models made at test time: a random-weight YOLO person_face and an ArcFace-shaped ONNX.

They exercise the real loading, pre-processing and parsing code of the `yolo` model set without
the downloaded weights (which tests never fetch). Nothing here touches the network: ultralytics is
put offline and builds the network from the architecture yaml that ships in its package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from photodb.ml.person_detection import quiet_ultralytics


def make_random_yolo(path: Path, names: tuple[str, ...] = ("face", "person"), seed: int = 0) -> Path:
    """A YOLOv8n with random weights and the given classes, saved as an ultralytics checkpoint.

    Random weights give near-zero class logits, so the class biases decide: the stride-32 head
    is made to report faces and the stride-16 head people, with confidence sigmoid(2) = 0.88.
    That yields a few dozen large face boxes and a few hundred body boxes on any photo, which the
    tests follow through parsing, matching and storage.
    """
    quiet_ultralytics()
    import torch
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    model = DetectionModel("yolov8n.yaml", nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    heads = [branch[-1] for branch in model.model[-1].cv3]
    with torch.no_grad():
        for conv in heads:
            conv.bias.fill_(-10.0)
        heads[2].bias[0] = 2.0
        heads[1].bias[min(1, len(names) - 1)] = 2.0
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "train_args": {"task": "detect"}, "version": "test"}, path)
    return path


def make_arcface_onnx(path: Path, dim: int = 512, fixed_batch: bool = True, seed: int = 0) -> Path:
    """An ONNX graph with buffalo_l's interface ('input.1' 1x3x112x112 -> '683' 1x512).

    Average pooling then a random projection: not a face recogniser, but a deterministic function
    of the aligned pixels, so the tests see the real pre-processing and alignment at work.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    batch: int | str = 1 if fixed_batch else "N"
    weight = rng.standard_normal((3 * 14 * 14, dim)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["683"]),
        ],
        "arcface_stub",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [batch, 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [batch, dim])],
        initializer=[numpy_helper.from_array(weight, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
