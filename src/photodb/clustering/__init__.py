"""Identity clustering: HDBSCAN bootstrap runs and incremental assignment of new faces.

The names below load on first use (PEP 562): importing any submodule runs this file, and the
bootstrap pulls in scipy and scikit-learn (~1 s), which `photodb people` never needs."""

from __future__ import annotations

from typing import Any

__all__ = ["assign_new_faces", "assign_unclustered", "bootstrap"]


def __getattr__(name: str) -> Any:
    if name == "bootstrap":
        from photodb.clustering.bootstrap import bootstrap

        return bootstrap
    if name in ("assign_new_faces", "assign_unclustered"):
        from photodb.clustering import incremental

        return getattr(incremental, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
