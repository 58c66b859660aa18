"""Prompts in the database: the prompt file format and defaults, seeding, edits and staleness,
matrices loaded per model, and zero-shot selection (single / multi, thresholds)."""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest

from photodb.database.prompt_repository import CategoryEmbeddings, PromptRepository
from photodb.prompts import CategorySpec, PromptFileError, default_prompts, parse_prompt_file
from photodb.prompts.classify import choose, classify
from photodb.prompts.embedding import embed_prompts, ensemble

SPEC_SCENE = {"mood", "setting", "activity", "time", "weather", "social"}
SPEC_FACE = {"emotion", "expression", "gaze"}


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def colours(mode: str = "single", min_confidence: float = 0.3) -> CategorySpec:
    return CategorySpec(
        "colour", "scene", mode, min_confidence, None,  # type: ignore[arg-type]
        {"red": ("a red thing",), "green": ("a green thing",), "blue": ("a blue thing",)},
    )  # fmt: skip


def test_default_set_has_the_spec_categories_with_several_texts_per_label():
    categories = {c.name: c for c in default_prompts()}
    assert {n for n, c in categories.items() if c.target == "scene"} == SPEC_SCENE
    assert {n for n, c in categories.items() if c.target == "face"} == SPEC_FACE
    for category in categories.values():
        assert len(category.labels) >= 3
        # a threshold at or below 1/labels would tag every photo with something in a multi category
        assert category.min_confidence > 1 / len(category.labels)
        for texts in category.labels.values():
            assert len(texts) >= 4 and len(set(texts)) == len(texts)
    assert "a happy photo" in categories["mood"].labels["happy"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"templates": ["a photo"]}, "exactly once"),
        ({"name": "Mood"}, "name"),
        ({"name": "taxonomy"}, "reserved"),
        ({"selection_mode": "some"}, "selection_mode"),
        ({"min_confidence": 1.5}, "min_confidence"),
        ({"labels": {"x": []}}, "at least one"),
    ],
)
def test_a_bad_prompt_file_is_one_clear_error(change, message):
    category = {
        "name": "mood", "target": "scene", "selection_mode": "single", "min_confidence": 0.3,
        "templates": ["a {} photo"], "labels": {"happy": ["happy"]},
    }  # fmt: skip
    category.update(change)
    text = json.dumps({"format": "photodb-prompts/1", "categories": [category]})
    with pytest.raises(PromptFileError, match=message) as error:
        parse_prompt_file(text, "mine.json")
    assert str(error.value).startswith("mine.json: ") and "\n" not in str(error.value)


def test_seeding_happens_once_and_never_over_a_users_categories(db):
    repository = PromptRepository(db)
    assert repository.seed_if_empty(default_prompts()) is True
    assert repository.seed_if_empty([colours()]) is False
    names = {r.name for r in repository.list_categories()}
    assert names == SPEC_SCENE | SPEC_FACE

    other = PromptRepository(db)
    with db.connection() as conn:
        conn.execute("DELETE FROM prompt_category")
    other.save_categories([colours()])
    assert other.seed_if_empty(default_prompts()) is False
    assert [r.name for r in other.list_categories()] == ["colour"]


def test_new_and_edited_labels_need_embedding_and_old_vectors_stop_counting(db):
    repository = PromptRepository(db)
    repository.save_categories([colours()])
    pending = repository.to_embed("m")
    assert [p.label for p in pending] == ["red", "green", "blue"]
    repository.store_embeddings("m", [(p, unit(i + 1, 1, 0)) for i, p in enumerate(pending)])
    assert repository.to_embed("m") == []
    assert len(repository.to_embed("other-model")) == 3
    assert repository.list_categories()[0].embedded == {"m": 3}

    assert repository.save_label("colour", "red", ["a crimson thing", "a red object"])
    assert [p.label for p in repository.to_embed("m")] == ["red"]
    assert repository.list_categories()[0].embedded == {"m": 2}
    (matrix,) = repository.load("m")
    assert matrix.labels == ("green", "blue")  # the stale vector is not used for classification
    assert len(repository.to_embed("m", everything=True)) == 3
    assert repository.save_label("nothing", "x", ["x"]) is False


def test_a_category_loads_as_one_matrix_per_model_in_label_order(db):
    repository = PromptRepository(db)
    repository.save_categories(
        [colours(), CategorySpec("look", "face", "multi", 0.2, None, {"up": ("u",), "down": ("d",)})]
    )
    vectors = {
        "red": unit(1, 0, 0),
        "green": unit(0, 1, 0),
        "blue": unit(0, 0, 1),
        "up": unit(1, 1, 0),
        "down": unit(0, 1, 1),
    }
    pending = repository.to_embed("m")
    repository.store_embeddings("m", [(p, vectors[p.label]) for p in pending])
    repository.store_embeddings("n", [(p, unit(1, 2, 3, 4)) for p in pending])
    loaded = {c.name: c for c in repository.load("m")}
    assert loaded["colour"].labels == ("red", "green", "blue")
    assert loaded["colour"].matrix.shape == (3, 3) and loaded["colour"].target == "scene"
    np.testing.assert_allclose(loaded["colour"].matrix[2], vectors["blue"], atol=1e-6)
    assert (loaded["look"].target, loaded["look"].selection_mode) == ("face", "multi")
    assert {c.name: c.matrix.shape for c in repository.load("n")} == {"colour": (3, 4), "look": (2, 4)}

    repository.update_category("look", enabled=False)
    assert [c.name for c in repository.load("m")] == ["colour"]
    assert repository.to_embed("x") == [p for p in repository.to_embed("x") if p.category == "colour"]


def test_the_version_moves_with_every_change_that_alters_the_matrices(db):
    repository = PromptRepository(db)
    seen = [repository.version("m")]

    def changed() -> bool:
        seen.append(repository.version("m"))
        return seen[-1] != seen[-2]

    repository.save_categories([colours()])
    assert changed()
    assert not changed()
    repository.store_embeddings("m", [(p, unit(1, 0)) for p in repository.to_embed("m")])
    assert changed()
    repository.store_embeddings("other", [(p, unit(1, 0)) for p in repository.to_embed("other")])
    assert not changed()  # another model's vectors are not this model's matrices
    repository.update_category("colour", min_confidence=0.6)
    assert changed()
    repository.save_label("colour", "pink", ["a pink thing"])
    assert changed()
    with db.connection() as conn:
        conn.execute("DELETE FROM prompt WHERE label = 'pink'")
    assert changed()


def test_schema_refuses_reserved_names_bad_modes_and_wrong_dimensions(db):
    repository = PromptRepository(db)
    repository.save_categories([colours()])
    with db.connection() as conn:
        for statement in (
            "INSERT INTO prompt_category (name, target, selection_mode, min_confidence)"
            " VALUES ('object', 'scene', 'single', 0.5)",
            "INSERT INTO prompt_category (name, target, selection_mode, min_confidence)"
            " VALUES ('x', 'scene', 'all', 0.5)",
            "INSERT INTO prompt_embedding (prompt_id, model_name, embedding_dim, embedding, texts_hash)"
            " SELECT min(id), 'm', 3, '[1,0]', 'h' FROM prompt",
        ):
            with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
                conn.execute(statement)


def test_ensembling_averages_unit_vectors_and_renormalises():
    vectors = np.array([[3, 0, 0], [0, 1, 0]], dtype=np.float32)  # lengths differ: each counts once
    np.testing.assert_allclose(ensemble(vectors), unit(1, 1, 0), atol=1e-6)


class WordCounter:
    """A real (if crude) text encoder: counts of a fixed vocabulary, for the batching logic."""

    model_name = "words"
    vocabulary = ("red", "green", "blue", "thing", "object")

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        rows = [[t.split().count(w) + 1e-3 for w in self.vocabulary] for t in texts]
        return np.asarray(rows, dtype=np.float32)


def test_embedding_shares_encoder_calls_and_keeps_each_labels_texts_together(db, monkeypatch):
    monkeypatch.setattr("photodb.prompts.embedding.TEXT_BATCH", 4)
    repository = PromptRepository(db)
    repository.save_categories(
        [
            CategorySpec(
                "colour",
                "scene",
                "single",
                0.3,
                None,
                {c: (f"a {c} thing", f"a {c} object", c) for c in ("red", "green", "blue")},
            )
        ]
    )
    encoder = WordCounter()
    rows = embed_prompts(repository.to_embed("words"), encoder)
    assert encoder.calls == [3, 3, 3]  # 6 texts would pass the batch size: one label per call
    by_label = {p.label: v for p, v in rows}
    assert int(np.argmax(by_label["green"][:3])) == 1 and int(np.argmax(by_label["blue"][:3])) == 2


def category(mode: str, min_confidence: float) -> CategoryEmbeddings:
    return CategoryEmbeddings(
        "colour", "scene", mode, min_confidence, ("red", "green", "blue"), np.eye(3, dtype=np.float32)
    )


@pytest.mark.parametrize(
    ("mode", "threshold", "probabilities", "chosen"),
    [
        ("single", 0.3, [0.5, 0.4, 0.1], ["red"]),
        ("single", 0.6, [0.5, 0.4, 0.1], []),  # the best is below the threshold: no tag
        ("multi", 0.3, [0.5, 0.4, 0.1], ["red", "green"]),
        ("multi", 0.45, [0.5, 0.4, 0.1], ["red"]),
        ("multi", 0.6, [0.5, 0.4, 0.1], []),
        ("single", 0.4, [0.1, 0.4, 0.5], ["blue"]),
    ],
)
def test_selection_modes_and_thresholds(mode, threshold, probabilities, chosen):
    tags = choose(category(mode, threshold), np.asarray(probabilities))
    assert [t.label for t in tags] == chosen
    assert all(t.confidence >= threshold for t in tags)


def test_classification_is_a_softmax_over_scaled_cosine_similarities():
    embedding = unit(0.3, 0.25, 0.0)
    (scores,) = classify(embedding, [category("multi", 0.2)])[0:1]
    (colour,) = scores
    np.testing.assert_allclose(colour.similarities, embedding, atol=1e-6)
    expected = np.exp(100 * embedding) / np.exp(100 * embedding).sum()
    np.testing.assert_allclose(colour.probabilities, expected, rtol=1e-5)
    assert [t.label for t in colour.chosen] == ["red"]  # 100 x 0.064 apart: red takes 0.998
    (soft,) = classify(embedding, [category("multi", 0.2)], logit_scale=10.0)[0]
    assert [t.label for t in soft.chosen] == ["red", "green"]
    assert colour.as_json()["chosen"] == ["red"]
