"""The sample photos the tests read: copies inside the repository (examples/photos, see its SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parent.parent / "examples" / "photos"


def manifest() -> dict[str, dict[str, Any]]:
    """Each sample's facts (size, date, GPS, faces, expected outcome) by its path under SAMPLES."""
    return {entry["path"]: entry for entry in json.loads((SAMPLES / "manifest.json").read_text())["files"]}
