"""process-local with TinySceneStage and TinyAgeStage registered, run as its own process:

python -m tests.processors.tiny_cli PATH [process-local options]   (from the repository root)
"""

from __future__ import annotations

from photodb import stages
from photodb.cli_local import main
from tests.processors.tiny_stages import TINY

if __name__ == "__main__":
    for name in ("scene_analysis", "age_gender"):
        stages.IMPLEMENTED_STAGES[name] = f"tests.processors.tiny_stages:{TINY[name]}"
    main()
