"""Running PhotoDB's commands as a user does: separate processes with their own environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
PROCESS_LOCAL = str(BIN / "process-local")
MAINTENANCE = str(BIN / "photodb-maintenance")
ENRICH = str(BIN / "enrich-photos")
BOOTSTRAP_CLUSTERS = str(Path(__file__).resolve().parents[1] / "scripts" / "bootstrap_clusters.py")


def cli_env(tmp_path: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(PHOTODB_HOME=str(tmp_path / "home"), IMG_PATH=str(tmp_path / "images"), LOG_LEVEL="WARNING")
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def process_local(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROCESS_LOCAL, *args], env=env, capture_output=True, text=True, timeout=timeout)


def bootstrap_clusters(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, BOOTSTRAP_CLUSTERS, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def run_command(
    argv: list[str], *, env: dict[str, str], cwd: Path | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """Any command line, in `cwd` (where its `.env` is read from)."""
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
