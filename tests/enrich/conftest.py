"""Fixtures for enrich tests: the local Anthropic server, settings pointing at it, indexed photos."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.enrich.anthropic_provider import IMAGE_LIMITS, AnthropicProvider
from photodb.enrich.runner import EnrichRunner
from tests.enrich.anthropic_server import AnthropicServer, running
from tests.imaging import gradient

API_KEY = "sk-ant-test-7f3c9d2e1b0a4f5e8d7c6b5a4f3e2d1c"


@pytest.fixture
def server() -> Iterator[AnthropicServer]:
    with running() as server:
        yield server


@pytest.fixture
def enrich_settings(settings: Settings, server: AnthropicServer, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "anthropic_api_key": SecretStr(API_KEY),
            "anthropic_base_url": server.url,
            "llm_max_retries": 2,
            "batch_size": 10,
            "min_batch_size": 2,
            "batch_check_interval": 0.01,
        }
    )


def runner_for(settings: Settings, db: Database) -> EnrichRunner:
    return EnrichRunner(settings, db, AnthropicProvider(settings), IMAGE_LIMITS)


def add_photos(db: Database, settings: Settings, root: Path, count: int, size: tuple[int, int] = (96, 64)) -> list[int]:
    """`count` indexed photos under root/album, each with a normalized PNG, a date and a camera."""
    settings.images_dir.mkdir(parents=True, exist_ok=True)
    (root / "album").mkdir(parents=True, exist_ok=True)
    ids = []
    with db.connection() as conn:
        conn.execute("UPDATE collection SET root_path = %s WHERE name = 'default'", (str(root),))
        for index in range(count):
            photo_uuid = uuid.uuid4()
            gradient(*size, seed=index).save(settings.images_dir / f"{photo_uuid}.png")
            row = conn.execute(
                """INSERT INTO photo (collection_id, uuid, filename, normalized_path, normalized_width,
                                      normalized_height)
                   VALUES ((SELECT id FROM collection WHERE name = 'default'), %s, %s, %s, %s, %s) RETURNING id""",
                (photo_uuid, f"album/photo_{photo_uuid}.jpg", f"{photo_uuid}.png", *size),
            ).fetchone()
            assert row is not None
            conn.execute(
                """INSERT INTO metadata (photo_id, captured_at, latitude, longitude, camera_make, camera_model)
                   VALUES (%s, %s, 46.5, 7.9, 'Canon', 'EOS R6')""",
                (row[0], datetime(2021, 7, 14, 15, 30)),
            )
            ids.append(row[0])
    return ids


def statuses(db: Database) -> dict[int, str]:
    with db.connection() as conn:
        rows = conn.execute("SELECT photo_id, status FROM processing_status WHERE stage = 'enrich'").fetchall()
    return {r[0]: r[1] for r in rows}
