"""Identity clustering: HDBSCAN bootstrap runs and incremental assignment of new faces."""

from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.incremental import assign_new_faces, assign_unclustered

__all__ = ["assign_new_faces", "assign_unclustered", "bootstrap"]
