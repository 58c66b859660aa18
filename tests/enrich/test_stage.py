"""EnrichStage: the spec's Stage R1 behind BaseStage, on photos claimed as the enrich runner claims them."""

from __future__ import annotations

from pathlib import Path

import pytest

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.enrich_repository import EnrichRepository
from photodb.database.repository import PhotoRepository, Scope
from photodb.enrich.anthropic_provider import IMAGE_LIMITS, AnthropicProvider
from photodb.stages import PIPELINE_ORDER, implemented_stages
from photodb.stages.base import BaseStage, StageContext, StageFailure
from photodb.stages.enrich import EnrichStage
from tests.enrich.anthropic_server import AnthropicServer
from tests.enrich.conftest import add_photos, statuses
from tests.enrich.protocol import Reply, analysis, tool_message

HOLDER = "enrich-test:1"


def stage_for(settings: Settings, db: Database) -> EnrichStage:
    photos = PhotoRepository(db)
    context = StageContext(settings, db, photos.get_collection(1))
    return EnrichStage(context, AnthropicProvider(settings), IMAGE_LIMITS, HOLDER)


def claimed(db: Database, count: int) -> list[int]:
    repo = EnrichRepository(db)
    repo.prepare(Scope(1), force=False, retry_failed=False)
    return repo.claim(HOLDER, Scope(1), count)


def test_process_stores_the_analysis_of_a_claimed_photo(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    (photo_id,) = add_photos(db, enrich_settings, tmp_path / "lib", 1)
    assert claimed(db, 1) == [photo_id]
    stage = stage_for(enrich_settings, db)
    assert isinstance(stage, BaseStage) and stage.name == "enrich"

    stage.process(PhotoRepository(db).get_photo(photo_id))

    assert statuses(db) == {photo_id: "completed"}
    with db.connection() as conn:
        row = conn.execute("SELECT description, input_tokens, provider FROM llm_analysis").fetchone()
    assert row == ("Two friends hiking above a lake.", 1200, "anthropic")


def test_a_photo_that_fails_raises_stage_failure_and_is_recorded(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    (photo_id,) = add_photos(db, enrich_settings, tmp_path / "lib", 1)
    claimed(db, 1)
    server.message_replies = [Reply(body=tool_message(analysis(people={"count": -2}))) for _ in range(2)]

    with pytest.raises(StageFailure, match=r"after 2 tries: people.count: Input should be greater"):
        stage_for(enrich_settings, db).process(PhotoRepository(db).get_photo(photo_id))

    assert statuses(db) == {photo_id: "failed"}
    assert server.count("POST", "/v1/messages") == 2  # LLM_REASKS=1: one re-ask, then the photo fails


def test_an_unusable_image_is_not_sent(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    (photo_id,) = add_photos(db, enrich_settings, tmp_path / "lib", 1)
    claimed(db, 1)
    for image in enrich_settings.images_dir.iterdir():
        image.write_bytes(b"not an image")

    outcome = stage_for(enrich_settings, db).enrich(photo_id)

    assert (outcome.ok, outcome.sent) == (False, False) and outcome.result.error
    assert statuses(db) == {photo_id: "failed"} and server.log == []


def test_enrich_is_not_a_process_local_stage() -> None:
    """Each photo costs money: only enrich-photos runs it."""
    assert "enrich" not in PIPELINE_ORDER and "enrich" not in implemented_stages()
