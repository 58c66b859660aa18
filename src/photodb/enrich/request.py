"""What one photo's analysis request carries: the image, sized for the provider, and what the library knows.

The image is the normalized PNG downscaled to the provider's long-side and pixel limits (never
enlarged), sent as JPEG, or as PNG when the picture has so few colours that PNG is smaller (both
are then encoded and the smaller kept); a result over the provider's byte limit is encoded again
at lower JPEG quality, then smaller. The context block is plain text from the database.
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path

from PIL import Image

from photodb.models.photo_analysis import PhotoAnalysisResponse

#: Colours at or below which a PNG is tried as well (graphics, scans, screenshots).
_PNG_CANDIDATE_COLOURS = 4096
_JPEG_QUALITIES = (85, 70, 55)


@dataclass(frozen=True)
class ImageLimits:
    """A provider's image limits: long side and total pixels it analyses, bytes it accepts (after base64)."""

    max_long_side: int
    max_pixels: int
    max_base64_bytes: int


#: Anthropic analyses at most ~1.15 MP with a 1568 px long side (larger images are scaled down on
#: their side, at the same token cost) and accepts 5 MB per image.
ANTHROPIC_IMAGE_LIMITS = ImageLimits(max_long_side=1568, max_pixels=1_150_000, max_base64_bytes=5 * 1024 * 1024)
#: Bedrock's Claude models: the same analysis size, 3.75 MB per image.
BEDROCK_IMAGE_LIMITS = ImageLimits(max_long_side=1568, max_pixels=1_150_000, max_base64_bytes=3_750_000)


class ImageUnusable(Exception):
    """The normalized image is missing or cannot be read; the photo fails with this message."""


@dataclass(frozen=True)
class EncodedImage:
    media_type: str
    data: str  # base64
    width: int
    height: int

    def __repr__(self) -> str:  # image bytes never go into logs or error messages
        return f"EncodedImage({self.media_type}, {self.width}x{self.height}, {len(self.data)} base64 bytes)"


@dataclass(frozen=True)
class PhotoContext:
    """What the library knows about a photo before the model sees it."""

    captured_at: datetime | None = None
    captured_at_offset: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    place_name: str | None = None
    camera: str | None = None
    people_count: int = 0
    person_names: tuple[str, ...] = ()
    scene_tags: tuple[str, ...] = ()

    def render(self) -> str:
        lines = ["Context from the photo library:"]
        if self.captured_at is not None:
            offset = f" (UTC{self.captured_at_offset})" if self.captured_at_offset else ""
            lines.append(f"- captured: {self.captured_at.isoformat(sep=' ', timespec='minutes')}{offset}")
        else:
            lines.append("- captured: unknown")
        if self.latitude is not None and self.longitude is not None:
            lines.append(f"- GPS: {self.latitude:.5f}, {self.longitude:.5f}")
        if self.place_name:
            lines.append(f"- place: {self.place_name}")
        if self.camera:
            lines.append(f"- camera: {self.camera}")
        lines.append(f"- people detected: {self.people_count}")
        if self.person_names:
            lines.append(f"- known persons in the photo: {', '.join(self.person_names)}")
        if self.scene_tags:
            lines.append(f"- scene tags: {', '.join(self.scene_tags)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class AnalysisRequest:
    photo_id: int
    image: EncodedImage
    context: PhotoContext = field(default_factory=PhotoContext)

    @property
    def custom_id(self) -> str:
        return custom_id_for(self.photo_id)


def custom_id_for(photo_id: int) -> str:
    return f"photo-{photo_id}"


def photo_id_from(custom_id: str) -> int | None:
    """The photo of a custom_id / recordId, None for an id PhotoDB did not make."""
    prefix, _, number = custom_id.partition("-")
    return int(number) if prefix == "photo" and number.isdigit() else None


@cache
def system_prompt() -> str:
    """The shipped instructions followed by the JSON schema: the static, cacheable part of every request."""
    instructions = resources.files("photodb.prompts").joinpath("system_prompt.md").read_text(encoding="utf-8")
    schema = json.dumps(PhotoAnalysisResponse.model_json_schema(), separators=(",", ":"))
    return f"{instructions.strip()}\n\nThe JSON schema of the answer:\n{schema}\n"


def target_size(width: int, height: int, limits: ImageLimits) -> tuple[int, int]:
    """The largest size within the limits with the same aspect ratio, never larger than the image."""
    scale = min(1.0, limits.max_long_side / max(width, height), math.sqrt(limits.max_pixels / (width * height)))
    return max(1, int(width * scale)), max(1, int(height * scale))


def encode_image(path: Path, limits: ImageLimits) -> EncodedImage:
    """The image at `path` downscaled to `limits`, as the smaller of JPEG and (few colours) PNG, base64."""
    try:
        with Image.open(path) as opened:
            opened.draft("RGB", target_size(*opened.size, limits))  # JPEG only: decode at a reduced scale
            image = opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ImageUnusable(f"normalized image unreadable: {path.name}: {error}") from error
    size = target_size(*image.size, limits)
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    while True:
        media_type, data = _smallest_encoding(image, limits)
        if data is not None:
            return EncodedImage(media_type, data, *image.size)
        image = image.resize((max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)), Image.Resampling.LANCZOS)


def _smallest_encoding(image: Image.Image, limits: ImageLimits) -> tuple[str, str | None]:
    candidates: list[tuple[str, bytes]] = []
    for quality in _JPEG_QUALITIES:
        candidates.append(("image/jpeg", _save(image, "JPEG", quality=quality, optimize=True)))
        if _base64_length(len(candidates[-1][1])) <= limits.max_base64_bytes:
            break
    if image.getcolors(_PNG_CANDIDATE_COLOURS) is not None:
        candidates.append(("image/png", _save(image, "PNG", optimize=True)))
    media_type, raw = min(candidates, key=lambda c: len(c[1]))
    if _base64_length(len(raw)) > limits.max_base64_bytes:
        return media_type, None
    return media_type, base64.b64encode(raw).decode("ascii")


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _base64_length(raw_length: int) -> int:
    return 4 * math.ceil(raw_length / 3)
