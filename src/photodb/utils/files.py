"""Finding photos on disk: a lazy walk that survives symlink loops, odd names and vanished files."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".heic", ".heif", ".avif", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".mpo"}
)


@dataclass
class DiscoveryStats:
    images: int = 0
    ignored_files: int = 0
    symlink_loops: int = 0
    unreadable_dirs: list[str] = field(default_factory=list)


def relative_name(path: Path, root: Path) -> str:
    """Path relative to the collection root as text PostgreSQL can hold.

    Names that are not valid UTF-8 keep their bytes as backslash escapes (b'\\xff' -> '\\xff'),
    which is stable, so the same file always maps to the same row.
    """
    raw = os.fsencode(path.relative_to(root))
    return raw.decode("utf-8", errors="backslashreplace")


_ESCAPED_BYTE = re.compile(rb"\\x([0-9a-f]{2})")


def path_for_name(root: Path, name: str) -> Path:
    """Inverse of relative_name: the file on disk for a stored name."""
    literal = root / name
    if "\\x" not in name or literal.exists():
        return literal
    raw = _ESCAPED_BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), name.encode("utf-8"))
    return root / os.fsdecode(raw)


def iter_images(root: Path, stats: DiscoveryStats | None = None, limit: int | None = None) -> Iterator[Path]:
    """Yield image files under `root` in a stable order, following directory symlinks once each."""
    stats = stats if stats is not None else DiscoveryStats()
    seen_dirs: set[tuple[int, int]] = set()

    def on_error(error: OSError) -> None:
        stats.unreadable_dirs.append(f"{error.filename}: {error.strerror}")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=on_error):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            stats.symlink_loops += 1
            dirnames[:] = []
            continue
        seen_dirs.add(key)
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                stats.ignored_files += 1
                continue
            stats.images += 1
            yield path
            if limit is not None and stats.images >= limit:
                return


def file_stat(path: Path) -> tuple[int, datetime] | None:
    """(size, mtime) of the file a path points at, or None when it cannot be stat'ed (dangling link)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, datetime.fromtimestamp(st.st_mtime, tz=UTC)


def content_hash(path: Path) -> str | None:
    """SHA-256 of the file, or None when it cannot be read (the normalize stage reports why)."""
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None
