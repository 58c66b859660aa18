"""Every SQL statement about prompts: categories, labels and their text embeddings per CLIP model.

A label's embedding is valid for the texts it was computed from: `texts_hash` (md5 of the texts
as JSON, computed by the server) is read together with the texts and stored with the vector, so
an edit made meanwhile leaves the stored row stale and it is embedded again.

The stage's PromptCache asks for `version(model)` every few seconds: it changes with any edit of
a category or label, an added or removed one, and any new embedding for the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg

from photodb.database.clustering.faces import array_of
from photodb.database.connection import Database
from photodb.prompts import CategorySpec

#: Transaction-scoped advisory lock key serialising the seeding of the default prompt set.
SEED_LOCK_KEY = 0x70726F6D707473


@dataclass(frozen=True)
class CategoryRow:
    name: str
    target: str
    selection_mode: str
    min_confidence: float
    enabled: bool
    description: str | None
    labels: tuple[str, ...]
    embedded: dict[str, int]  # model name -> labels with a current embedding


@dataclass(frozen=True)
class PromptToEmbed:
    prompt_id: int
    category: str
    label: str
    texts: tuple[str, ...]
    texts_hash: str


@dataclass(frozen=True)
class CategoryEmbeddings:
    """One enabled category's labels and their embeddings for one model, rows in label order."""

    name: str
    target: str
    selection_mode: str
    min_confidence: float
    labels: tuple[str, ...]
    matrix: np.ndarray  # (labels, dim) float32, unit rows


PromptSetVersion = tuple[object, ...]


class PromptRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing prompts ---------------------------------------------------------------------

    def seed_if_empty(self, categories: Sequence[CategorySpec]) -> bool:
        """Store `categories` when no category exists yet (first use); True when it did."""
        with self.db.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SEED_LOCK_KEY,))
            if conn.execute("SELECT EXISTS (SELECT 1 FROM prompt_category)").fetchone()[0]:  # type: ignore[index]
                return False
            for category in categories:
                _save_category(conn, category)
            return True

    def save_categories(self, categories: Iterable[CategorySpec]) -> int:
        """Create or update categories and their labels (other labels of a category are kept)."""
        count = 0
        with self.db.connection() as conn, conn.transaction():
            for category in categories:
                count += _save_category(conn, category)
        return count

    def save_label(self, category: str, label: str, texts: Sequence[str]) -> bool:
        """Add a label to a category or replace its texts; False when there is no such category."""
        with self.db.connection() as conn, conn.transaction():
            row = conn.execute(
                "UPDATE prompt_category SET updated_at = clock_timestamp() WHERE name = %s RETURNING id", (category,)
            ).fetchone()
            if row is None:
                return False
            conn.execute(
                """INSERT INTO prompt (category_id, label, texts) VALUES (%s, %s, %s)
                   ON CONFLICT (category_id, label) DO UPDATE
                      SET texts = EXCLUDED.texts, enabled = true, updated_at = clock_timestamp()""",
                (row[0], label, list(texts)),
            )
        return True

    def update_category(
        self,
        name: str,
        *,
        target: str | None = None,
        selection_mode: str | None = None,
        min_confidence: float | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> bool:
        """Change the given settings of an existing category; False when there is no such category."""
        with self.db.connection() as conn:
            row = conn.execute(
                """UPDATE prompt_category
                      SET target = coalesce(%s, target), selection_mode = coalesce(%s, selection_mode),
                          min_confidence = coalesce(%s, min_confidence), description = coalesce(%s, description),
                          enabled = coalesce(%s, enabled), updated_at = clock_timestamp()
                    WHERE name = %s RETURNING id""",
                (target, selection_mode, min_confidence, description, enabled, name),
            ).fetchone()
        return row is not None

    # -- reading -----------------------------------------------------------------------------

    def list_categories(self) -> list[CategoryRow]:
        with self.db.connection() as conn:
            rows = conn.execute(
                """SELECT c.name, c.target, c.selection_mode, c.min_confidence, c.enabled, c.description,
                           array(SELECT p.label FROM prompt p WHERE p.category_id = c.id ORDER BY p.id),
                           coalesce((SELECT jsonb_object_agg(m.model_name, m.n)
                                       FROM (SELECT e.model_name, count(*) AS n
                                               FROM prompt p JOIN prompt_embedding e ON e.prompt_id = p.id
                                              WHERE p.category_id = c.id
                                               AND e.texts_hash = md5(array_to_json(p.texts)::text)
                                              GROUP BY e.model_name) m), '{}'::jsonb)
                      FROM prompt_category c ORDER BY c.target DESC, c.id"""
            ).fetchall()
        return [CategoryRow(r[0], r[1], r[2], r[3], r[4], r[5], tuple(r[6]), dict(r[7])) for r in rows]

    def version(self, model_name: str) -> PromptSetVersion:
        """Changes whenever what `load(model_name)` returns may have changed."""
        with self.db.connection() as conn:
            row = conn.execute(
                """SELECT (SELECT max(updated_at) FROM prompt_category), (SELECT count(*) FROM prompt_category),
                          (SELECT max(updated_at) FROM prompt), (SELECT count(*) FROM prompt),
                          (SELECT max(created_at) FROM prompt_embedding WHERE model_name = %s)""",
                (model_name,),
            ).fetchone()
        assert row is not None
        return tuple(row)

    def to_embed(self, model_name: str, *, everything: bool = False) -> list[PromptToEmbed]:
        """Enabled labels without a current embedding for the model (all labels with `everything`)."""
        with self.db.connection() as conn:
            rows = conn.execute(
                """SELECT p.id, c.name, p.label, p.texts, md5(array_to_json(p.texts)::text)
                      FROM prompt p JOIN prompt_category c ON c.id = p.category_id
                      LEFT JOIN prompt_embedding e ON e.prompt_id = p.id AND e.model_name = %s
                     WHERE %s OR (p.enabled AND c.enabled
                                  AND (e.prompt_id IS NULL OR e.texts_hash <> md5(array_to_json(p.texts)::text)))
                     ORDER BY p.id""",
                (model_name, everything),
            ).fetchall()
        return [PromptToEmbed(r[0], r[1], r[2], tuple(r[3]), r[4]) for r in rows]

    def store_embeddings(self, model_name: str, rows: Sequence[tuple[PromptToEmbed, np.ndarray]]) -> None:
        """Upsert embeddings; a prompt deleted meanwhile is left out."""
        if not rows:
            return
        with self.db.connection() as conn, conn.transaction():
            for prompt, vector in rows:
                conn.execute(
                    """INSERT INTO prompt_embedding (prompt_id, model_name, embedding_dim, embedding, texts_hash)
                       SELECT id, %s, %s, %s, %s FROM prompt WHERE id = %s
                       ON CONFLICT (prompt_id, model_name) DO UPDATE
                          SET embedding_dim = EXCLUDED.embedding_dim, embedding = EXCLUDED.embedding,
                              texts_hash = EXCLUDED.texts_hash, created_at = clock_timestamp()""",
                    (model_name, int(vector.shape[0]), vector.astype(np.float32), prompt.texts_hash, prompt.prompt_id),
                )

    def load(self, model_name: str) -> list[CategoryEmbeddings]:
        """Every enabled category's current embeddings for the model, in one query.

        Labels without a current embedding are left out (the caller embeds them first)."""
        with self.db.connection() as conn:
            rows = conn.execute(
                """SELECT c.name, c.target, c.selection_mode, c.min_confidence, p.label, e.embedding
                      FROM prompt_category c
                      JOIN prompt p ON p.category_id = c.id AND p.enabled
                      JOIN prompt_embedding e ON e.prompt_id = p.id AND e.model_name = %s
                                             AND e.texts_hash = md5(array_to_json(p.texts)::text)
                     WHERE c.enabled
                     ORDER BY c.target DESC, c.id, p.id""",
                (model_name,),
            ).fetchall()
        grouped: dict[str, list[tuple[object, ...]]] = {}
        for row in rows:
            grouped.setdefault(row[0], []).append(row)
        return [
            CategoryEmbeddings(
                name,
                str(members[0][1]),
                str(members[0][2]),
                float(members[0][3]),  # type: ignore[arg-type]
                tuple(str(m[4]) for m in members),
                np.stack([array_of(m[5]).astype(np.float32) for m in members]),
            )
            for name, members in grouped.items()
        ]


def _save_category(conn: psycopg.Connection, category: CategorySpec) -> int:
    """Upsert one category and its labels inside the caller's transaction; the number of labels."""
    row = conn.execute(
        """INSERT INTO prompt_category (name, target, selection_mode, min_confidence, description)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (name) DO UPDATE
              SET target = EXCLUDED.target, selection_mode = EXCLUDED.selection_mode,
                  min_confidence = EXCLUDED.min_confidence,
                  description = coalesce(EXCLUDED.description, prompt_category.description),
                  updated_at = clock_timestamp()
           RETURNING id""",
        (category.name, category.target, category.selection_mode, category.min_confidence, category.description),
    ).fetchone()
    for label, texts in category.labels.items():
        conn.execute(
            """INSERT INTO prompt (category_id, label, texts) VALUES (%s, %s, %s)
               ON CONFLICT (category_id, label) DO UPDATE
                  SET texts = EXCLUDED.texts, enabled = true, updated_at = clock_timestamp()""",
            (row[0], label, list(texts)),
        )
    return len(category.labels)
