"""One settings object for every knob PhotoDB has, read from the environment and `.env`."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("photodb", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False)

    # Database: unset means "start the embedded PostgreSQL under PHOTODB_HOME".
    database_url: SecretStr | None = None
    photodb_home: Path = Field(default_factory=default_home)

    # Paths
    ingest_path: Path | None = None
    img_path: Path | None = None
    log_file: Path | None = None
    batch_requests_path: Path | None = None

    # Processing
    resize_scale: float = Field(default=1.0, gt=0, le=1.0)
    max_image_pixels: int = 179_000_000
    png_compress_level: int = Field(default=1, ge=0, le=9)
    processing_lease_seconds: int = Field(default=900, gt=0)
    claim_batch_size: int = Field(default=4, ge=1, le=1000)
    # How long transient database errors (restart, failover, dropped connections) are retried
    # before a run stops with "database unreachable".
    database_retry_deadline_seconds: float = Field(default=60.0, gt=0)

    # Detection stage
    detection_backend: Literal["auto", "yolo", "offline"] = "auto"
    detection_model_path: Path = Path("models/yolov8x_person_face.pt")
    arcface_model_path: Path = Path("models/buffalo_l/w600k_r50.onnx")
    detection_min_confidence: float = Field(default=0.5, ge=0, le=1)
    detection_force_cpu: bool = False
    detection_prefer_coreml: bool = False
    detection_min_face_size: int = Field(default=24, ge=0)  # smaller faces are stored but not embedded
    detection_min_face_sharpness: float = Field(default=0.0, ge=0)  # Laplacian variance; 0 embeds blurry faces
    detection_offline_face_min_confidence: float = Field(default=0.8, ge=0, le=1)  # YuNet scores run high
    yolo_batch_enabled: bool = True

    # Batch ML inference
    batch_coordinator_enabled: bool = True
    batch_coordinator_max_size: int = Field(default=32, ge=1)
    batch_coordinator_max_wait_ms: int = Field(default=50, ge=0)
    batch_coordinator_on_cpu: bool = False  # CPU batches cost what their images cost one by one

    # Age/gender stage
    mivolo_model_path: Path = Path("models/mivolo_d1.pth.tar")
    mivolo_force_cpu: bool = False

    # Clustering
    hdbscan_min_cluster_size: int = Field(default=3, ge=2)
    hdbscan_min_samples: int = Field(default=2, ge=1)
    clustering_threshold: float = Field(default=0.45, gt=0)  # cosine distance, ArcFace embeddings
    # dlib's 128-d embeddings sit closer together: different people from about 0.11 (sample faces)
    clustering_threshold_dlib: float = Field(default=0.1, gt=0)
    hdbscan_cluster_selection_method: Literal["eom", "leaf"] = "eom"
    clustering_reduce_dims: int = Field(default=96, ge=2, le=512)  # PCA before HDBSCAN
    clustering_assign_on_detection: bool = True
    clustering_ambiguity_margin: float = Field(default=0.03, ge=0)  # cosine; closer calls go to review
    clustering_staleness_share: float = Field(default=0.2, gt=0)  # new-face share that asks for a rebuild
    person_association_threshold: float = Field(default=0.8, gt=0)

    # LLM
    llm_provider: Literal["anthropic", "bedrock"] = "anthropic"
    anthropic_api_key: SecretStr | None = None
    llm_model: str = "claude-3-5-sonnet-20241022"
    bedrock_model_id: str = "anthropic.claude-3-5-sonnet-20241022-v2:0"
    aws_region: str = "us-east-1"
    aws_profile: str | None = None
    bedrock_batch_s3_bucket: str | None = None
    bedrock_batch_role_arn: SecretStr | None = None

    # Batch processing
    batch_size: int = Field(default=100, ge=1)
    min_batch_size: int = Field(default=10, ge=1)
    batch_check_interval: int = Field(default=300, ge=1)

    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("aws_profile", "bedrock_batch_s3_bucket", "database_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    def clustering_threshold_for(self, embedding_model: str) -> float:
        """Tier 2's largest cosine distance to a centroid, for embeddings of this model."""
        return self.clustering_threshold_dlib if embedding_model.startswith("dlib") else self.clustering_threshold

    @cached_property
    def images_dir(self) -> Path:
        """Where normalized PNGs go: IMG_PATH, or a folder under PHOTODB_HOME."""
        return (self.img_path or self.photodb_home / "images").expanduser()

    @cached_property
    def pgdata_dir(self) -> Path:
        return self.photodb_home.expanduser() / "pgdata"


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
