"""The core install (no ml extra) in its own virtual environment, as a user without ML gets it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(900)
def test_core_install_indexes_photos_and_names_the_missing_extra(tmp_path, database_url):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    started = time.monotonic()
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "-c", str(ROOT / "constraints.txt"), "-e", str(ROOT)],
        capture_output=True, text=True,
    )  # fmt: skip
    install_seconds = time.monotonic() - started
    assert install.returncode == 0, install.stderr[-2000:]
    print(f"core install took {install_seconds:.1f}s")
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True)
    assert check.returncode != 0, "the core install must not pull in torch"

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env.update(DATABASE_URL=database_url, PHOTODB_HOME=str(tmp_path / "home"), IMG_PATH=str(tmp_path / "img"))
    result = subprocess.run(
        [str(venv / "bin" / "process-local"), str(ROOT / "examples" / "photos"), "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stages"]["normalize"]["completed"] == 14
    assert summary["stages"]["metadata"]["completed"] == 15
    assert "pip install 'photodb[ml]'" in summary["unavailable"]["detection"]

    explicit = subprocess.run(
        [str(venv / "bin" / "process-local"), str(ROOT / "examples" / "photos"), "--stage", "detection"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert explicit.returncode == 1
    assert "detection needs the ml extra" in explicit.stderr and "photodb[ml]" in explicit.stderr
