"""Face alignment and embedding-vector helpers shared by every face embedder.

ArcFace-family networks (and OpenCV's SFace) were trained on faces warped by a similarity
transform that puts five landmarks (eyes, nose tip, mouth corners) onto a fixed 112x112 template;
unaligned crops cost a lot of recognition accuracy.
"""

from __future__ import annotations

import numpy as np

from photodb.ml.boxes import Box

EMBEDDING_COLUMN_DIM = 512
ARCFACE_SIZE = 112
#: insightface's reference landmark positions for a 112x112 ArcFace input.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def order_landmarks(points: np.ndarray) -> np.ndarray:
    """Put five points in template order: eyes left-to-right, nose, mouth corners left-to-right.

    Detectors disagree on whether "left eye" means the subject's or the image's left; ordering by
    image x makes the mapping onto the template independent of that convention.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(5, 2)
    eyes = pts[:2][np.argsort(pts[:2, 0])]
    mouth = pts[3:][np.argsort(pts[3:, 0])]
    return np.vstack([eyes, pts[2:3], mouth])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, shift) taking src onto dst (Umeyama)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1
    rotation = u @ np.diag(d) @ vt
    var = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / var if var > 0 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_arcface(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112x112 ArcFace input for a face with five landmarks (any channel order is kept)."""
    import cv2

    matrix = similarity_transform(order_landmarks(landmarks), ARCFACE_TEMPLATE)
    return cv2.warpAffine(image, matrix, (ARCFACE_SIZE, ARCFACE_SIZE), borderValue=0.0)


def centred_crop(image: np.ndarray, face: Box, size: int) -> np.ndarray:
    """Unaligned fallback: a square crop around the face box, resized to `size`."""
    import cv2

    cx, cy = face.center
    half = max(face.width, face.height) / 2
    x0, y0 = round(cx - half), round(cy - half)
    x1, y1 = round(cx + half), round(cy + half)
    height, width = image.shape[:2]
    pad = max(0, -x0, -y0, x1 - width, y1 - height)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    return cv2.resize(image[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian: low on blurry faces."""
    import cv2

    gray = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY) if chip.ndim == 3 else chip
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def pad_embedding(vector: np.ndarray, size: int = EMBEDDING_COLUMN_DIM) -> np.ndarray:
    """Zero-pad to the column's width; cosine distances between padded vectors are unchanged."""
    vector = np.asarray(vector, dtype=np.float32).ravel()
    if vector.size > size:
        raise ValueError(f"embedding of {vector.size} dimensions does not fit a {size}-d column")
    return np.pad(vector, (0, size - vector.size))
