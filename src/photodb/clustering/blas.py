"""One BLAS thread for tier 1's small matrix products (photodb.clustering.incremental)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from threadpoolctl import ThreadpoolController

#: Up to this many faces, tier 1's matrix products run on one BLAS thread.
SMALL_BATCH = 256
_blas_libraries: list[Any] | None = None
_blas_lock = threading.Lock()
_blas_saved: list[int] = []
_blas_depth = 0


@contextmanager
def single_threaded_blas(faces: int) -> Iterator[None]:
    """One BLAS thread for a small batch: a product with a few rows gains nothing from threads, and
    on a busy machine their hand-offs cost milliseconds (p95 of one face's product: 8 ms with two
    threads under load, 0.12 ms with one). The limit is process-wide for those microseconds; the
    libraries are looked up once (threadpoolctl's own context manager rescans them every time)."""
    global _blas_libraries, _blas_saved, _blas_depth
    if faces > SMALL_BATCH:
        yield
        return
    with _blas_lock:  # worker threads overlap: the first in saves the setting, the last out restores it
        if _blas_libraries is None:
            _blas_libraries = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        if _blas_depth == 0:
            _blas_saved = [library.num_threads for library in _blas_libraries]
            for library in _blas_libraries:
                library.set_num_threads(1)
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                for library, threads in zip(_blas_libraries, _blas_saved, strict=True):
                    library.set_num_threads(threads)
