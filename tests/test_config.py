import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from photodb.config import Settings, load_settings
from photodb.config_errors import ConfigurationError, mask_secrets, shown_value
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


@pytest.mark.parametrize(
    ("variable", "value", "shown", "accepted"),
    [
        ("RESIZE_SCALE", "abc", "'abc'", "expected a number greater than 0 and at most 1.0"),
        ("LOG_LEVEL", "loud", "'LOUD'", "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("DETECTION_FORCE_CPU", "maybe", "'maybe'", "expected true or false"),
        ("CLAIM_BATCH_SIZE", "0", "'0'", "expected a whole number at least 1 and at most 1000"),
        (
            "DATABASE_URL",
            "host=db password=hunter2 port=x",
            "'host=db password=*** port=x'",
            "port is not a number; expected a PostgreSQL URL",
        ),
    ],
)
def test_an_invalid_setting_is_one_line_with_the_value_masked(monkeypatch, variable, value, shown, accepted):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_env_file=None)
    message = str(caught.value)
    assert message.startswith(f"invalid setting {variable}={shown} (from environment): {accepted}")
    assert "\n" not in message and "hunter2" not in message and "pydantic" not in message


def test_every_invalid_setting_gets_its_own_line_and_env_file_lines_are_named(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("LOG_LEVEL=info\nBEDROCK_BATCH_ROLE_ARN=arn:aws:iam::123:role/x\nRESIZE_SCALE=2\n")
    monkeypatch.setenv("DATABASE_URL", "mysql://root:toor@db/photos")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_env_file=env_file)
    lines = str(caught.value).splitlines()
    assert lines == [
        "invalid setting DATABASE_URL='mysql://root:***@db/photos' (from environment): not a PostgreSQL connection "
        "URL; expected a PostgreSQL URL such as postgresql://user:password@host:5432/photodb (or key=value pairs), "
        "or unset for the embedded server",
        f"invalid setting RESIZE_SCALE='2' (from {env_file.absolute()} line 3): expected a number greater than 0 "
        "and at most 1.0",
    ]


def test_a_secret_that_is_not_a_url_is_never_shown():
    field = Settings.model_fields["anthropic_api_key"]
    assert shown_value(field, "sk-ant-abc") == "'***'"
    assert mask_secrets("postgresql://u:p%40ss@h/db password=x") == "postgresql://u:***@h/db password=***"


def test_an_env_line_that_is_not_name_value_is_refused_without_showing_it(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("RESIZE_SCALE=0.5\nsk-ant-secret-key\n")
    with pytest.raises(ConfigurationError, match=r"line 2 is not NAME=value: fix or remove it") as caught:
        load_settings(_env_file=env_file)
    assert "sk-ant" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A_B=1\n\n\nRESIZE_SCALE 0.5\n", "line 4 is not NAME=value (it starts with RESIZE_SCALE)"),
        ("RESIZE-SCALE=0.5\n", "line 1 is not NAME=value: "),
        ('LOG_FILE="/tmp/unterminated\n', "line 1 is not NAME=value (it starts with LOG_FILE"),
    ],
)
def test_env_file_lines_that_would_be_skipped_silently_are_refused(tmp_path, text, expected):
    env_file = tmp_path / ".env"
    env_file.write_text(text)
    with pytest.raises(ConfigurationError, match=re.escape(expected)):
        load_settings(_env_file=env_file)
