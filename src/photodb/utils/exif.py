"""EXIF reading that never trusts the file: every value is checked before it becomes a column.

piexif parses the EXIF block (it keeps every tag, including ones Pillow drops); Pillow's own
parser is the fallback when piexif rejects a block. Implausible values (dates like 0000:00:00,
latitudes over 90, zero denominators) are left out of the columns and explained in `notes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import piexif
from PIL import ExifTags, Image

from photodb.utils.image import register_formats

MAX_BYTES_KEPT = 4096
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EXIF_DATE = re.compile(r"^\s*(\d{4})[:\-/](\d{2})[:\-/](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")

#: Filename date patterns of common phones and cameras, tried in order.
_FILENAME_DATES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("android", re.compile(r"(?:IMG|VID|PXL|MVIMG|PANO|BURST)_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})")),
    ("whatsapp", re.compile(r"(?:IMG|VID)-(\d{4})(\d{2})(\d{2})-WA\d+")),
    ("screenshot", re.compile(r"Screenshot[_ ](\d{4})-(\d{2})-(\d{2})[-_ ](\d{2})[-.](\d{2})[-.](\d{2})")),
    ("dated", re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})[ _](\d{2})\.(\d{2})\.(\d{2})")),
    ("compact", re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})[_-](\d{2})(\d{2})(\d{2})(?!\d)")),
)
_MIN_YEAR = 1826  # the oldest surviving photograph


@dataclass
class ExtractedMetadata:
    """Columns of the metadata table plus the full tag dump (`extra`) and notes on dropped values."""

    values: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        return {**self.values, "extra": self.extra, "notes": self.notes}


def clean_text(value: bytes | str) -> str:
    """Text PostgreSQL accepts: decoded leniently, NUL and other control characters removed."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return _CONTROL.sub("", value).strip()


def _json_value(value: Any) -> Any:
    """A JSON-safe rendition of a piexif value (rationals as floats, bytes as text or hex)."""
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="strict") if _is_text(value) else None
        if text is not None:
            return clean_text(text)
        shown = value[:MAX_BYTES_KEPT].hex()
        return shown if len(value) <= MAX_BYTES_KEPT else {"hex": shown, "truncated_from_bytes": len(value)}
    if isinstance(value, tuple):
        if len(value) == 2 and all(isinstance(v, int) for v in value):
            return _rational(value)
        return [_json_value(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    if isinstance(value, str):
        return clean_text(value)
    return value


def _is_text(value: bytes) -> bool:
    try:
        decoded = value.rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\n\r" for ch in decoded)


def _rational(pair: tuple[int, int]) -> float | None:
    numerator, denominator = pair
    return None if denominator == 0 else numerator / denominator


def _read_exif_dict(image: Image.Image) -> tuple[dict[str, dict[int, Any]], str]:
    """IFD name -> {tag id: raw value}, and which parser produced it."""
    raw = image.info.get("exif")
    if raw:
        try:
            loaded = piexif.load(raw)
            return {k: v for k, v in loaded.items() if k != "thumbnail" and isinstance(v, dict)}, "piexif"
        except Exception:  # piexif raises bare ValueError/struct.error/KeyError on bad blocks
            pass
    exif = image.getexif()
    result: dict[str, dict[int, Any]] = {"0th": dict(exif.items())}
    for ifd_name, ifd_id in (("Exif", ExifTags.IFD.Exif), ("GPS", ExifTags.IFD.GPSInfo)):
        try:
            result[ifd_name] = dict(exif.get_ifd(ifd_id).items())
        except (KeyError, ValueError, TypeError, OSError):
            result[ifd_name] = {}
    for ifd in result.values():
        for tag, value in list(ifd.items()):
            if hasattr(value, "numerator") and hasattr(value, "denominator"):
                ifd[tag] = (int(value.numerator), int(value.denominator)) if value.denominator else (0, 0)
            elif isinstance(value, tuple):
                ifd[tag] = tuple(
                    (int(v.numerator), int(v.denominator)) if hasattr(v, "denominator") else v for v in value
                )
    return result, "pillow"


def _tag_name(ifd: str, tag: int) -> str:
    info = piexif.TAGS.get(ifd, {}).get(tag) or piexif.TAGS["Image"].get(tag)
    return info["name"] if info else f"Tag{tag:#06x}"


def parse_exif_datetime(text: Any) -> datetime | None:
    """'2009:09:09 20:27:09' (trailing junk ignored) -> datetime; None for blank or impossible dates."""
    if isinstance(text, bytes):
        text = clean_text(text)
    if not isinstance(text, str):
        return None
    match = _EXIF_DATE.match(text)
    if not match:
        return None
    try:
        parsed = datetime(*(int(g) for g in match.groups()))
    except ValueError:
        return None
    if parsed.year < _MIN_YEAR or parsed > datetime.now() + timedelta(days=366):
        return None
    return parsed


def parse_offset(text: Any) -> str | None:
    if isinstance(text, bytes):
        text = clean_text(text)
    if not isinstance(text, str):
        return None
    match = _OFFSET.match(text.strip())
    if not match or int(match.group(2)) > 14 or int(match.group(3)) >= 60:
        return None
    return text.strip()


def date_from_filename(name: str) -> datetime | None:
    for _, pattern in _FILENAME_DATES:
        match = pattern.search(name)
        if not match:
            continue
        parts = [int(g) for g in match.groups()]
        try:
            parsed = datetime(*parts)
        except ValueError:
            continue
        if parsed.year >= _MIN_YEAR and parsed <= datetime.now() + timedelta(days=366):
            return parsed
    return None


def _gps_coordinate(
    value: Any, ref: Any, positive: bytes, negative: bytes, limit: float, label: str, notes: list[str]
) -> float | None:
    if value is None:
        return None
    if not (isinstance(value, tuple) and len(value) == 3 and all(isinstance(v, tuple) for v in value)):
        notes.append(f"GPS {label} is malformed ({value!r}); dropped")
        return None
    if any(len(v) != 2 or v[1] == 0 for v in value):
        notes.append(f"GPS {label} has a zero denominator; dropped")
        return None
    degrees, minutes, seconds = (Fraction(v[0], v[1]) for v in value)
    if minutes < 0 or minutes >= 60 or seconds < 0 or seconds >= 60 or degrees < 0:
        notes.append(f"GPS {label} has impossible minutes/seconds ({float(minutes)}, {float(seconds)}); dropped")
        return None
    decimal = float(degrees + minutes / 60 + seconds / 3600)
    ref_text = ref.strip(b"\x00 ").upper() if isinstance(ref, bytes) else str(ref or "").encode().upper()
    if ref_text == negative:
        decimal = -decimal
    elif ref_text not in (positive, b""):
        notes.append(f"GPS {label} reference {ref!r} is not {positive.decode()}/{negative.decode()}; dropped")
        return None
    if abs(decimal) > limit:
        notes.append(f"GPS {label} {decimal:.6f} is out of range ±{limit:g}; dropped")
        return None
    return decimal


def _gps(gps: dict[int, Any], notes: list[str]) -> dict[str, float | None]:
    latitude = _gps_coordinate(
        gps.get(piexif.GPSIFD.GPSLatitude), gps.get(piexif.GPSIFD.GPSLatitudeRef), b"N", b"S", 90, "latitude", notes
    )
    longitude = _gps_coordinate(
        gps.get(piexif.GPSIFD.GPSLongitude), gps.get(piexif.GPSIFD.GPSLongitudeRef),
        b"E", b"W", 180, "longitude", notes,
    )  # fmt: skip
    if (latitude is None) != (longitude is None):
        if latitude is not None or longitude is not None:
            notes.append("GPS has only one of latitude/longitude; dropped")
        latitude = longitude = None
    if latitude == 0 and longitude == 0:
        notes.append("GPS position is exactly 0,0 (a camera without a fix); dropped")
        latitude = longitude = None
    altitude = None
    raw_altitude = gps.get(piexif.GPSIFD.GPSAltitude)
    if isinstance(raw_altitude, tuple) and len(raw_altitude) == 2:
        altitude = _rational(raw_altitude)
        if altitude is not None and gps.get(piexif.GPSIFD.GPSAltitudeRef) in (1, b"\x01"):
            altitude = -altitude
    return {"latitude": latitude, "longitude": longitude, "altitude": altitude}


def _number(value: Any) -> float | None:
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return _rational(value)
    if isinstance(value, tuple) and value:
        return _number(value[0])
    if isinstance(value, int | float) and value == value:
        return float(value)
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes | str):
        return clean_text(value) or None
    return None


def extract_metadata(path: Path, filename: str | None = None) -> ExtractedMetadata:
    """Everything the metadata table stores about the photo at `path`."""
    register_formats()
    result = ExtractedMetadata()
    with Image.open(path) as image:
        ifds, parser = _read_exif_dict(image)
        result.extra["_parser"] = parser
        result.extra["_format"] = image.format
    for ifd_name, tags in ifds.items():
        result.extra[ifd_name] = {_tag_name(ifd_name, tag): _json_value(value) for tag, value in tags.items()}
    zeroth, exif, gps = ifds.get("0th", {}), ifds.get("Exif", {}), ifds.get("GPS", {})

    for tag, offset_tag, source in (
        (piexif.ExifIFD.DateTimeOriginal, piexif.ExifIFD.OffsetTimeOriginal, "exif:DateTimeOriginal"),
        (piexif.ExifIFD.DateTimeDigitized, piexif.ExifIFD.OffsetTimeDigitized, "exif:DateTimeDigitized"),
        (piexif.ImageIFD.DateTime, piexif.ExifIFD.OffsetTime, "exif:DateTime"),
    ):
        raw = (zeroth if tag == piexif.ImageIFD.DateTime else exif).get(tag)
        if raw is None:
            continue
        parsed = parse_exif_datetime(raw)
        if parsed is None:
            result.notes.append(f"{source} {clean_text(raw)!r} is not a valid date; ignored")
            continue
        result.values.update(
            captured_at=parsed, captured_at_source=source, captured_at_offset=parse_offset(exif.get(offset_tag))
        )
        break
    if "captured_at" not in result.values:
        from_name = date_from_filename(filename or path.name)
        if from_name is not None:
            result.values.update(captured_at=from_name, captured_at_source="filename")

    result.values.update(_gps(gps, result.notes))
    iso = _number(exif.get(piexif.ExifIFD.ISOSpeedRatings))
    orientation = zeroth.get(piexif.ImageIFD.Orientation)
    result.values.update(
        camera_make=_text(zeroth.get(piexif.ImageIFD.Make)),
        camera_model=_text(zeroth.get(piexif.ImageIFD.Model)),
        lens_model=_text(exif.get(piexif.ExifIFD.LensModel)),
        iso=int(iso) if iso is not None and 0 < iso < 10_000_000 else None,
        aperture=_number(exif.get(piexif.ExifIFD.FNumber)),
        exposure_time=_number(exif.get(piexif.ExifIFD.ExposureTime)),
        focal_length=_number(exif.get(piexif.ExifIFD.FocalLength)),
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None,
    )
    return result
