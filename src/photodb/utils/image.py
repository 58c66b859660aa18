"""Opening any photo format PhotoDB accepts and turning it into an upright 8-bit RGB image.

Every failure becomes an ImageError whose message says what is wrong with the file, because
that message is what the user reads in processing_status.error_message.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from photodb.utils.private import write_private

_register_lock = threading.Lock()
_registered = False


class ImageError(Exception):
    """The file cannot be used as a photo; the message names the reason."""


def register_formats() -> None:
    """HEIC/HEIF through pillow-heif (AVIF is native in Pillow); done once per process."""
    global _registered
    with _register_lock:
        if not _registered:
            import pillow_heif

            pillow_heif.register_heif_opener()
            # load_image enforces MAX_IMAGE_PIXELS (configurable) from the header itself.
            Image.MAX_IMAGE_PIXELS = None
            _registered = True


@dataclass
class LoadedImage:
    image: Image.Image  # upright, RGB
    original_size: tuple[int, int]  # (width, height) after orientation, before any resize
    format: str | None
    scale: float = 1.0  # normalized pixels per original pixel: divide a normalized box by it


def resize_factor(size: tuple[int, int], scale: float, max_side: int) -> float:
    """RESIZE_SCALE, lowered so that the long side of `size` ends at most `max_side` (0: no cap); never > 1."""
    factor = min(scale, 1.0)
    if max_side > 0:
        factor = min(factor, max_side / max(size))
    return factor


def target_size(size: tuple[int, int], factor: float) -> tuple[int, int]:
    """`size` times `factor`, at least one pixel a side."""
    if factor >= 1.0:
        return size
    width, height = size
    return max(1, round(width * factor)), max(1, round(height * factor))


def describe_open_failure(path: Path, error: BaseException) -> str:
    """Turn an exception from opening or decoding `path` into one specific sentence."""
    if isinstance(error, FileNotFoundError):
        if path.is_symlink():
            return f"file not found: {path.name} is a symbolic link to {os.readlink(path)}, which does not exist"
        return f"file not found: {path}"
    if isinstance(error, PermissionError):
        return f"permission denied reading {path.name}"
    if isinstance(error, IsADirectoryError):
        return f"{path.name} is a directory, not a photo"
    if isinstance(error, UnidentifiedImageError):
        try:
            with path.open("rb") as handle:
                head = handle.read(16)
        except OSError:
            head = b""
        return f"not a recognised image format (file starts with {head!r})"
    if isinstance(error, Image.DecompressionBombError):
        return f"decompression bomb guard: {error}"
    text = str(error) or type(error).__name__
    if "truncated" in text or "broken data stream" in text or "premature end" in text.lower():
        return f"image data is truncated or corrupt: {text}"
    return f"cannot decode image: {type(error).__name__}: {text}"


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: high bit depths scaled down, transparency flattened onto white, CMYK converted."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        if mode == "F":
            top = max(float(values.max(initial=1.0)), 1e-9)
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return image
    return image.convert("RGB")


def load_image(path: Path, max_pixels: int, scale: float = 1.0, max_side: int = 0) -> LoadedImage:
    """Decode the first frame of `path`, upright and in RGB, scaled by `scale` and capped at `max_side`.

    The pixel count is checked against `max_pixels` from the header, before any decoding.
    """
    register_formats()
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ImageError(describe_open_failure(path, error)) from error
    if size == 0:
        raise ImageError("file is empty (0 bytes)")
    try:
        with Image.open(path) as opened:
            width, height = opened.size
            if width * height > max_pixels:
                raise ImageError(
                    f"decompression bomb guard: {width}x{height} = {width * height:,} pixels is over "
                    f"the limit of {max_pixels:,} (MAX_IMAGE_PIXELS)"
                )
            image_format = opened.format
            quarter_turn = opened.getexif().get(0x0112, 1) in (5, 6, 7, 8)
            opened.seek(0)
            factor = resize_factor((width, height), scale, max_side)
            stored_target = target_size((width, height), factor)
            if stored_target != (width, height) and image_format == "JPEG":
                # libjpeg decodes at 1/2, 1/4 or 1/8 size far faster than full size; draft picks the
                # smallest of those still at least the target, in stored (not yet rotated) pixels.
                opened.draft("RGB", stored_target)
            upright = ImageOps.exif_transpose(opened)
            upright.load()
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError) as error:
        raise ImageError(describe_open_failure(path, error)) from error
    original = (height, width) if quarter_turn else (width, height)
    rgb = _to_rgb(upright)
    target = target_size(original, factor)
    if factor < 1.0 and rgb.size != target:
        rgb = rgb.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return LoadedImage(rgb, original, image_format, factor)


def save_png(image: Image.Image, target: Path, compress_level: int) -> None:
    """Write atomically: a crash never leaves a half-written PNG under the final name."""
    write_private(target, lambda out: image.save(out, format="PNG", compress_level=compress_level))
