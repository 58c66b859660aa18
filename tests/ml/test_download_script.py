"""scripts/download_models.sh: the same MODELS_DIR and the same pins as PhotoDB, run from another folder.

Downloads are served from local files (file:// URLs, the script's mirror override), so nothing
touches the network; the files are stand-ins whose hashes cannot match the published pins.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from photodb.config import Settings
from photodb.ml.files import manifest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "download_models.sh"


def run_script(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.endswith(("_SHA256", "_URL")) and k != "MODELS_DIR"}
    return subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=cwd,
        env=base | {"PYTHON": sys.executable} | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_script_uses_photodbs_models_dir_and_pins_from_any_folder(tmp_path: Path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "yolo.pt").write_bytes(b"not the published checkpoint")
    (served / "mivolo.pth.tar").write_bytes(b"a checkpoint nobody published a hash for")
    (served / "clip.safetensors").write_bytes(b"tensors nobody published a hash for")
    with zipfile.ZipFile(served / "buffalo_l.zip", "w") as archive:
        archive.writestr("buffalo_l/w600k_r50.onnx", b"not the published model")
    home = tmp_path / "home"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        "PHOTODB_HOME": str(home),
        "YOLO_PERSON_FACE_URL": (served / "yolo.pt").as_uri(),
        "BUFFALO_L_URL": (served / "buffalo_l.zip").as_uri(),
        "MIVOLO_D1_URL": (served / "mivolo.pth.tar").as_uri(),
        "MOBILECLIP_S2_URL": (served / "clip.safetensors").as_uri(),
    }

    result = run_script(elsewhere, env)

    models = Settings(_env_file=None, photodb_home=home).models_root  # type: ignore[call-arg]
    assert result.returncode == 1, result.stdout + result.stderr
    pins = manifest()
    # Pinned files that do not match are removed, with the manifest's hash in the message.
    assert f"expected {pins['yolov8x_person_face.pt'].sha256}; removed" in result.stderr
    assert f"expected {pins['buffalo_l.zip'].sha256}; removed" in result.stderr
    assert not (models / "yolov8x_person_face.pt").exists()
    # The unpinned checkpoint is kept in PhotoDB's MODELS_DIR, with the setting that pins it.
    digest = hashlib.sha256((served / "mivolo.pth.tar").read_bytes()).hexdigest()
    assert (models / "mivolo_d1.pth.tar").is_file()
    assert f"set MIVOLO_MODEL_SHA256={digest}" in result.stdout
    clip_digest = hashlib.sha256((served / "clip.safetensors").read_bytes()).hexdigest()
    assert (models / "mobileclip_s2.safetensors").is_file()
    assert f"set CLIP_MODEL_SHA256={clip_digest}" in result.stdout
    assert not (elsewhere / "models").exists()

    # A pin of the user's own (the setting PhotoDB reads) is honoured by the script too.
    own = hashlib.sha256((served / "yolo.pt").read_bytes()).hexdigest()
    again = run_script(elsewhere, env | {"DETECTION_MODEL_SHA256": own})
    assert f"ok: {models / 'yolov8x_person_face.pt'} (sha256 verified)" in again.stdout

    # Without that pin (say it lives in .env, which the script does not read) a file already there is
    # reported, never deleted: it may be the user's own.
    third = run_script(elsewhere, env)
    assert third.returncode == 1
    assert "kept (your own file? pin it with DETECTION_MODEL_SHA256=" in third.stderr
    assert (models / "yolov8x_person_face.pt").is_file()
