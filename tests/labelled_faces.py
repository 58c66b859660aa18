"""A small library of labelled faces from the repository's own samples, for grouping tests.

Each labelled sample photo (examples/photos/manifest.json's face identities, Eileen Collins of
tests/data/SOURCES.md, and the three women of the group photo, each cut out into her own photo:
three faces of one photo are three people) is written as several photos of that person: itself
and variations a camera gives (mirrored, tighter framing, darker, brighter, tilted, out of focus,
low resolution). Eileen Collins is seen in four photos only (tighter, brighter, out of focus, low
resolution): with dlib her cluster's centroid comes within 0.10 of Grace Hopper's (soft and
low-resolution faces bring dlib's faces of different people closer), the distance at which
merge-similar used to merge centroids, while most of their faces are farther apart.
`write_library` returns each written file's identity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from photodb.ml.face_detection import yunet_faces
from tests.samples import SAMPLES, manifest

ASTRONAUT = Path(__file__).resolve().parent / "data" / "astronaut.jpg"
GROUP_PHOTO = "faces/vladmandic_face_api/sample1.jpg"
#: People seen in few photos: identity -> the variations written.
SEEN_RARELY = {"eileen_collins": ("tight", "bright", "soft", "low")}


def _variants(image: Image.Image) -> dict[str, Image.Image]:
    width, height = image.size
    dx, dy = int(width * 0.06), int(height * 0.06)
    return {
        "orig": image,
        "mirror": ImageOps.mirror(image),
        "tight": image.crop((dx, dy, width - dx, height - dy)),
        "dark": ImageEnhance.Brightness(image).enhance(0.7),
        "bright": ImageEnhance.Brightness(image).enhance(1.3),
        "tilt": image.rotate(7, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(128, 128, 128)),
        "soft": image.filter(ImageFilter.GaussianBlur(2)),
        "low": image.resize((max(1, width // 3), max(1, height // 3))).resize((width, height)),
    }


def _group_women(image: Image.Image) -> list[Image.Image]:
    """The group photo's three faces, left to right, each with the shoulders around it."""
    bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
    faces = sorted(yunet_faces(bgr, 0.8), key=lambda f: -f.width * f.height)[:3]
    crops = []
    for face in sorted(faces, key=lambda f: f.x):
        margin = int(max(face.width, face.height) * 0.9)
        box = (
            max(0, int(face.x) - margin),
            max(0, int(face.y) - margin),
            min(image.width, int(face.x + face.width) + margin),
            min(image.height, int(face.y + face.height) + margin),
        )
        crops.append(image.crop(box))
    return crops


def sources() -> list[tuple[str, Image.Image]]:
    """(identity, photo) of every labelled sample face."""
    found: list[tuple[str, Image.Image]] = []
    for path, entry in sorted(manifest().items()):
        faces = entry.get("faces") or {}
        identities = faces.get("identities") or []
        if len(identities) == 1 and faces.get("count") == 1:
            with Image.open(SAMPLES / path) as image:
                found.append((identities[0], ImageOps.exif_transpose(image).convert("RGB")))
    with Image.open(ASTRONAUT) as image:
        found.append(("eileen_collins", image.convert("RGB")))
    with Image.open(SAMPLES / GROUP_PHOTO) as image:
        women = _group_women(ImageOps.exif_transpose(image).convert("RGB"))
    found += [(f"group_photo_woman_{i + 1}", crop) for i, crop in enumerate(women)]
    return found


def write_library(folder: Path) -> dict[str, str]:
    """Write the photos into `folder`; returns file name -> identity."""
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, str] = {}
    for number, (identity, image) in enumerate(sources()):
        for kind, variant in _variants(image).items():
            if identity in SEEN_RARELY and kind not in SEEN_RARELY[identity]:
                continue
            name = f"{identity}_{number}_{kind}.jpg"
            variant.save(folder / name, quality=92)
            truth[name] = identity
    return truth
