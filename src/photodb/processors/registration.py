"""Registering the files of a folder: walk, stat, hash and upsert in chunks, while the workers run.

Names are relative to the collection's root. Another process may move that root up to a parent
folder mid-run (prefixing every stored name); the database refuses a chunk named against the old
root, and the chunk is named again against the new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TypeVar

from photodb.database.connection import Database
from photodb.database.models import Collection
from photodb.database.queue_repository import QueuePlan, QueueRepository
from photodb.database.repository import FileFacts, PhotoRepository, RootMoved
from photodb.utils.files import content_hash, file_stat, relative_name

log = logging.getLogger(__name__)

REGISTRATION_CHUNK = 256
T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass
class Classified:
    """One chunk of files compared with what the database knows."""

    new_or_changed: list[FileFacts]
    touched: list[FileFacts]  # size/mtime moved, content did not
    names: list[str]
    known: set[str]

    @property
    def new(self) -> int:
        return len([f for f in self.new_or_changed if f.filename not in self.known])

    @property
    def changed(self) -> int:
        return len([f for f in self.new_or_changed if f.filename in self.known])

    @property
    def unchanged(self) -> int:
        return len(self.names) - len(self.new_or_changed)


class Registrar:
    def __init__(self, db: Database, collection: Collection, on_root_moved: Callable[[Collection], None]) -> None:
        self.db = db
        self.repo = PhotoRepository(db)
        self.queue = QueueRepository(db)
        self.collection = collection
        self.on_root_moved = on_root_moved

    def classify(self, chunk: list[Path]) -> Classified:
        root = self.collection.root_path
        assert root is not None
        names = [relative_name(path, root) for path in chunk]
        known = self.db.call("reading known files", self.repo.known_files, self.collection.id, names)
        new_or_changed: list[FileFacts] = []
        touched: list[FileFacts] = []
        for path, name in zip(chunk, names, strict=True):
            stat = file_stat(path)
            size, mtime = stat if stat else (None, None)
            previous = known.get(name)
            if previous and stat and previous.size == size and previous.mtime == mtime:
                continue
            facts = FileFacts(name, size, mtime, content_hash(path) if stat else None)
            if previous and facts.content_hash is not None and previous.content_hash == facts.content_hash:
                touched.append(facts)
            elif not previous or previous.content_hash != facts.content_hash or previous.size != size:
                new_or_changed.append(facts)
        return Classified(new_or_changed, touched, names, set(known))

    def register(self, chunk: list[Path], stages: list[str], force: list[str], plan: QueuePlan) -> Classified:
        """Register one chunk under the collection's current root; block what sits behind a failure,
        skip what cannot run here."""
        while True:
            classified = self.classify(chunk)
            root = self.collection.root_path
            assert root is not None
            try:
                ids = self.db.call(
                    "registering files", self.repo.register, self.collection.id, classified.new_or_changed,
                    classified.touched, classified.names, stages, force, root=root,
                )  # fmt: skip
            except RootMoved as moved:
                log.info("collection '%s' moved to %s by another process", self.collection.name, moved.root)
                self.collection = Collection(self.collection.id, self.collection.name, moved.root)
                self.on_root_moved(self.collection)
                continue
            self.db.call("finding blocked photos", self.queue.refresh_blocked, plan, photo_ids=ids)
            self.db.call("skipping photos", self.queue.skip_unavailable, plan, photo_ids=ids)
            return classified
