"""PromptCache: each category's label matrix for one model, reloaded when the prompts change.

Classifying a photo needs every category's matrix; reading them per photo would cost a query
and a few hundred vectors each time. The cache keeps them and asks the database for the prompt
set's version at most every `check_seconds` (one cheap query), or at once after `invalidate()`.
When the version moved it first embeds labels that have no current embedding for the model (a
label added with `photodb prompts add` is used by a running stage without any rebuild), then
reloads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from photodb.database.prompt_repository import CategoryEmbeddings, PromptRepository, PromptSetVersion
from photodb.prompts.embedding import TextEncoder, build_prompt_embeddings

#: How stale a running stage's prompts may be after an edit made elsewhere.
PROMPT_CHECK_SECONDS = 5.0


class PromptCache:
    def __init__(
        self,
        repository: PromptRepository,
        encoder: TextEncoder,
        *,
        check_seconds: float = PROMPT_CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repository = repository
        self.encoder = encoder
        self.check_seconds = check_seconds
        self.clock = clock
        self.loads = 0  # how many times the matrices were read (for tests and logs)
        self._lock = threading.Lock()
        self._version: PromptSetVersion | None = None
        self._checked_at: float | None = None
        self._categories: list[CategoryEmbeddings] = []

    def invalidate(self) -> None:
        """Check the version on the next use, however recently it was checked."""
        with self._lock:
            self._checked_at = None

    def categories(self, target: str) -> list[CategoryEmbeddings]:
        """The enabled categories of `target` ('scene' or 'face'), current to within check_seconds."""
        with self._lock:
            now = self.clock()
            if self._checked_at is None or now - self._checked_at >= self.check_seconds:
                self._refresh()
                self._checked_at = now
            current = self._categories
        return [c for c in current if c.target == target]

    def _refresh(self) -> None:
        model = self.encoder.model_name
        version = self.repository.version(model)
        if version == self._version:
            return
        if build_prompt_embeddings(self.repository, self.encoder):
            version = self.repository.version(model)
        # Read after the version: an edit racing this load shows as a newer version next time.
        self._categories = self.repository.load(model)
        self._version = version
        self.loads += 1
