"""Decoded normalized images shared by the stages of one process, so a photo's PNG is decoded once.

detection, scene_analysis and age_gender all read the same normalized PNG, and decoding it costs
more than the age/gender models themselves (bench/age_gender.py). In one process the stages of a
photo run close together (claims are taken in photo order, stage after stage), so a small LRU of
decoded images lets the later stages reuse the first decode (detection's, in a full run).

Entries are keyed by the file's (path, inode, size, mtime_ns): a file rewritten under the same
name (a `--force` rerun of normalize writes a new file and renames it over) is a new key, never a
stale hit. Arrays are RGB uint8 and read-only, as every stage shares them. Memory is bounded by
`budget_bytes` of pixel data, least recently used first out; an image larger than the whole
budget is decoded and handed over, never kept.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

#: Pixel bytes kept per worker thread: four 2048 x 1365 normalized images (the default NORMALIZE_MAX_SIDE).
BUDGET_PER_WORKER = 32 * 1024 * 1024
#: Workers counted at least: --parallel 1 still keeps a photo or two behind the one in work.
MIN_WORKERS = 2

_Key = tuple[str, int, int, int]


class UndecodableImage(ValueError):
    """The file exists but holds no image the decoder can read."""


def budget_for(parallel: int) -> int:
    """The cache's byte budget for a run with `parallel` worker threads."""
    return BUDGET_PER_WORKER * max(MIN_WORKERS, parallel)


def _key(path: Path) -> _Key:
    stat = os.stat(path)
    return (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _read_only(image: np.ndarray) -> np.ndarray:
    image.flags.writeable = False
    return image


def decode_rgb(path: Path) -> np.ndarray:
    """The PNG as a fresh (writable) RGB uint8 array; OpenCV decodes PNGs faster than Pillow."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UndecodableImage("not an image OpenCV can read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)


class DecodedImages:
    """A thread-safe LRU of decoded normalized images, bounded by `budget_bytes` of pixels."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[_Key, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.decodes = 0
        self.hits = 0

    def rgb(self, path: Path) -> np.ndarray:
        """The image at `path`, read-only RGB uint8 (H, W, 3).

        Raises FileNotFoundError (or another OSError) when the file cannot be read and
        UndecodableImage when it is not an image."""
        key = _key(path)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
            self.decodes += 1
        image = _read_only(decode_rgb(path))  # outside the lock: other workers' photos go on
        self._keep(key, image)
        return image

    def _keep(self, key: _Key, image: np.ndarray) -> None:
        size = image.nbytes
        if size > self.budget_bytes:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= previous.nbytes
            stale = [k for k in self._entries if k[0] == key[0]]  # older versions of the same file
            for old in stale:
                self._bytes -= self._entries.pop(old).nbytes
            self._entries[key] = image
            self._bytes += size
            while self._bytes > self.budget_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
