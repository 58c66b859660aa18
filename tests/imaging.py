"""Test helpers that build real image files with real EXIF blocks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import piexif
from PIL import Image


def exif_bytes(
    *,
    taken: str | bytes | None = None,
    digitized: str | None = None,
    modified: str | None = None,
    offset: str | None = None,
    make: bytes | str | None = None,
    model: bytes | str | None = None,
    orientation: int | None = None,
    gps: dict[int, Any] | None = None,
    exif_extra: dict[int, Any] | None = None,
) -> bytes:
    zeroth: dict[int, Any] = {}
    exif: dict[int, Any] = dict(exif_extra or {})
    if make is not None:
        zeroth[piexif.ImageIFD.Make] = make
    if model is not None:
        zeroth[piexif.ImageIFD.Model] = model
    if orientation is not None:
        zeroth[piexif.ImageIFD.Orientation] = orientation
    if modified is not None:
        zeroth[piexif.ImageIFD.DateTime] = modified
    if taken is not None:
        exif[piexif.ExifIFD.DateTimeOriginal] = taken
    if digitized is not None:
        exif[piexif.ExifIFD.DateTimeDigitized] = digitized
    if offset is not None:
        exif[piexif.ExifIFD.OffsetTimeOriginal] = offset
    return piexif.dump({"0th": zeroth, "Exif": exif, "GPS": dict(gps or {}), "1st": {}, "thumbnail": None})


def gps_block(lat: float, lon: float) -> dict[int, Any]:
    def dms(value: float) -> tuple[tuple[int, int], ...]:
        value = abs(value)
        degrees = int(value)
        minutes = int((value - degrees) * 60)
        seconds = round(((value - degrees) * 60 - minutes) * 60 * 1000)
        return ((degrees, 1), (minutes, 1), (seconds, 1000))

    return {
        piexif.GPSIFD.GPSLatitudeRef: b"N" if lat >= 0 else b"S",
        piexif.GPSIFD.GPSLatitude: dms(lat),
        piexif.GPSIFD.GPSLongitudeRef: b"E" if lon >= 0 else b"W",
        piexif.GPSIFD.GPSLongitude: dms(lon),
    }


def gradient(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: smooth gradients plus a little noise, distinct per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)), np.full_like(x, (seed * 37) % 256)],
        axis=-1,
    )
    noisy = base + rng.integers(-8, 8, size=base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def write_jpeg(path: Path, size: tuple[int, int] = (64, 48), seed: int = 0, exif: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = gradient(*size, seed=seed)
    kwargs = {"exif": exif} if exif is not None else {}
    image.save(path, format="JPEG", quality=90, **kwargs)
    return path


def make_library(root: Path, count: int, size: tuple[int, int] = (64, 48)) -> list[Path]:
    """`count` distinct JPEGs with dates and cameras, spread over two sub-folders."""
    paths = []
    for index in range(count):
        taken = datetime(2020, 1, 1 + index % 28, 12, index % 60, 0).strftime("%Y:%m:%d %H:%M:%S")
        exif = exif_bytes(taken=taken, make="Canon", model=f"Model {index % 3}")
        paths.append(write_jpeg(root / f"album{index % 2}" / f"photo_{index:04d}.jpg", size, seed=index, exif=exif))
    return paths
