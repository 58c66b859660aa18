"""Face detection with YuNet (weights shipped in package yuface): boxes with five landmarks.

YuNet is the offline set's face detector, and it also supplies the landmarks that align faces
found by detectors without them (the YOLO person_face model): `find_landmarks` runs it on a
margin crop around such a box.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from photodb.ml.boxes import Box

#: YuNet is trained on small inputs and libfacedetection warns above 960 px; larger photos are
#: scaled down for face finding and the boxes scaled back.
YUNET_MAX_SIDE = 960
#: The face crop YuNet searches for landmarks: the box grown by this share on each side...
LANDMARK_MARGIN = 0.25
#: ...and scaled so its longer side has this many pixels (YuNet's sweet spot).
LANDMARK_CROP_SIDE = 192

#: libfacedetection keeps global scratch buffers; one YuNet call at a time across all threads.
_YUNET_LOCK = threading.Lock()


def yunet_faces(image: np.ndarray, min_confidence: float) -> list[Box]:
    """Faces with five landmarks from YuNet, in the pixel frame of `image` (BGR uint8)."""
    import cv2
    import yuface

    height, width = image.shape[:2]
    scale = min(1.0, YUNET_MAX_SIDE / max(height, width))
    small = image if scale >= 1.0 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    with _YUNET_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        confs, boxes, landmarks = yuface.detect(np.ascontiguousarray(small), conf=min_confidence)
    faces = []
    for conf, (x, y, w, h), points in zip(confs, boxes, landmarks, strict=True):
        if w <= 0 or h <= 0:
            continue
        pts = tuple((float(px) / scale, float(py) / scale) for px, py in np.asarray(points).reshape(5, 2))
        faces.append(Box(x / scale, y / scale, w / scale, h / scale, min(float(conf) / 100.0, 1.0), pts))
    return faces


def find_landmarks(image: np.ndarray, face: Box) -> np.ndarray | None:
    """Five landmarks for a face box, from YuNet run on a margin crop around it (BGR input)."""
    import cv2

    height, width = image.shape[:2]
    mx, my = face.width * LANDMARK_MARGIN, face.height * LANDMARK_MARGIN
    x0, y0 = max(0, int(face.x - mx)), max(0, int(face.y - my))
    x1, y1 = min(width, int(face.x2 + mx)), min(height, int(face.y2 + my))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    crop = image[y0:y1, x0:x1]
    scale = LANDMARK_CROP_SIDE / max(crop.shape[:2])
    crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    candidates = [f for f in yunet_faces(crop, 0.3) if f.landmarks]
    if not candidates:
        return None
    target = Box((face.x - x0) * scale, (face.y - y0) * scale, face.width * scale, face.height * scale, 1.0)
    best = max(candidates, key=target.iou)
    if target.iou(best) < 0.2:
        return None
    assert best.landmarks is not None
    return np.array(best.landmarks) / scale + np.array([x0, y0])


def face_landmarks(image: np.ndarray, face: Box) -> np.ndarray | None:
    """The box's own landmarks when the detector gave them, else YuNet's."""
    return np.array(face.landmarks) if face.landmarks else find_landmarks(image, face)
