from pathlib import Path

import pytest
from pydantic import ValidationError

from photodb.config import Settings
from photodb.database.connection import describe_url, pool_max_size


def test_env_file_and_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("RESIZE_SCALE=0.5\nLOG_LEVEL=debug\nPHOTODB_HOME=/srv/photodb\n")
    monkeypatch.setenv("DETECTION_MIN_CONFIDENCE", "0.7")
    settings = Settings()
    assert (settings.resize_scale, settings.log_level, settings.detection_min_confidence) == (0.5, "DEBUG", 0.7)
    assert settings.images_dir == Path("/srv/photodb/images")


def test_invalid_values_are_refused(monkeypatch):
    monkeypatch.setenv("RESIZE_SCALE", "3")
    with pytest.raises(ValidationError, match="resize_scale"):
        Settings(_env_file=None)


def test_secrets_never_show_in_repr(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@db/photodb")
    shown = repr(Settings(_env_file=None))
    assert "very-secret" not in shown and "hunter2" not in shown
    assert describe_url("postgresql://u:hunter2@db:5433/photodb") == "u@db:5433/photodb"


@pytest.mark.parametrize(("parallel", "size"), [(1, 1), (8, 8), (50, 50), (500, 50)])
def test_pool_is_one_connection_per_worker_up_to_fifty(parallel, size):
    assert pool_max_size(parallel) == size


def test_normalize_max_side_defaults_to_2048_and_zero_keeps_full_size(monkeypatch):
    assert Settings(_env_file=None).normalize_max_side == 2048
    monkeypatch.setenv("NORMALIZE_MAX_SIDE", "0")
    assert Settings(_env_file=None).normalize_max_side == 0
    monkeypatch.setenv("NORMALIZE_MAX_SIDE", "-1")
    with pytest.raises(ValidationError, match="normalize_max_side"):
        Settings(_env_file=None)
