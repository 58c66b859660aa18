"""process-local with TinySceneStage and TinyAgeStage registered, run as its own process.

`tiny_process_local(...)` runs `python -m tests.processors.tiny_cli PATH [options]` from the
repository root, as tests/cli.py runs process-local.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from photodb import stages
from photodb.cli_local import main
from tests.processors.tiny_stages import TINY

REPOSITORY = Path(__file__).resolve().parents[2]


def tiny_process_local(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", __name__, *args], env=env, cwd=REPOSITORY, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


if __name__ == "__main__":
    for name in ("scene_analysis", "age_gender"):
        stages.IMPLEMENTED_STAGES[name] = f"tests.processors.tiny_stages:{TINY[name]}"
    main()
