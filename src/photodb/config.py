"""One settings object for every knob PhotoDB has, read from the environment and `.env`."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

import platformdirs
import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from photodb.clustering.distances import Rule
from photodb.config_errors import check_env_file, describe_validation_error

ENV_FILE = ".env"
#: Text -> photo search: the smallest cosine similarity between a query's CLIP text embedding and a
#: photo's image embedding that counts as a match, per CLIP model (name, then family). Not measured
#: here (no registry ships CLIP weights): 0.2 sits under LAION-400M's image-caption filter for
#: CLIP ViT-B/32 (0.28: a short query scores below a full caption) and above the 0.1-0.18 that
#: unrelated text-image pairs score with CLIP-family models, MobileCLIP included.
SEARCH_SIMILARITY_FLOORS: dict[str, float] = {
    "mobileclip": 0.2,
    "openclip": 0.2,
}


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("photodb", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Database: unset means "start the embedded PostgreSQL under PHOTODB_HOME".
    database_url: SecretStr | None = None
    photodb_home: Path = Field(default_factory=default_home)
    # PgBouncer (transaction mode) or another pooler in front of DATABASE_URL: "auto" detects it,
    # "transaction" assumes one, "none" assumes a direct connection (prepared statements allowed).
    database_pooler: Literal["auto", "none", "transaction"] = "auto"

    # Paths
    ingest_path: Path | None = None
    img_path: Path | None = None
    log_file: Path | None = None
    batch_requests_path: Path | None = None

    # Processing
    resize_scale: float = Field(default=1.0, gt=0, le=1.0)
    normalize_max_side: int = Field(default=2048, ge=0)  # long side of the normalized PNG; 0 keeps full size
    max_image_pixels: int = 179_000_000
    png_compress_level: int = Field(default=1, ge=0, le=9)
    processing_lease_seconds: int = Field(default=900, gt=0)
    claim_batch_size: int = Field(default=4, ge=1, le=1000)
    # How long transient database errors (restart, failover, dropped connections) are retried
    # before a run stops with "database unreachable".
    database_retry_deadline_seconds: float = Field(default=60.0, gt=0)

    # Model files: MODELS_DIR (default PHOTODB_HOME/models) holds what scripts/download_models.sh
    # fetches; a *_MODEL_PATH left unset means that file under MODELS_DIR, wherever the command runs.
    # *_SHA256 pins a file of your own (see photodb/ml/files.py for the checksum rules).
    models_dir: Path | None = None
    detection_model_path: Path | None = None
    detection_model_sha256: str | None = None
    arcface_model_path: Path | None = None
    arcface_model_sha256: str | None = None
    mivolo_model_path: Path | None = None
    mivolo_model_sha256: str | None = None
    clip_model_path: Path | None = None
    clip_model_sha256: str | None = None

    # Detection stage
    detection_backend: Literal["auto", "yolo", "offline"] = "auto"
    face_embedder: Literal["auto", "arcface", "mbf", "sface", "dlib"] = "auto"
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

    # Age/gender stage: "auto" runs MiVOLO when its file is there, else the packaged offline model.
    mivolo_force_cpu: bool = False
    age_gender_model: Literal["auto", "mivolo", "offline"] = "auto"
    # A gender probability below this is stored as 'U' (unknown).
    age_gender_gender_min_confidence: float = Field(default=0.6, ge=0.5, le=1)

    # Object labels (scene analysis): COCO classes from the packaged YOLO11n, stored as photo tags.
    # 0.4: measured on the sample photos (photodb/ml/object_labels.py says how).
    object_labels_enabled: bool = True
    object_label_min_confidence: float = Field(default=0.4, ge=0, le=1)

    # Scene analysis: CLIP_MODEL_NAME is the open_clip architecture of the weights file;
    # CLIP_MODEL_CONFIG an open_clip config JSON for an architecture open_clip does not ship
    # (registered under the file's stem, which CLIP_MODEL_NAME then names).
    clip_model_name: str = "MobileCLIP-S2"
    clip_model_config: Path | None = None
    clip_force_cpu: bool = False

    # Clustering
    # process-local / photodb index end by bringing people up to date (people.refresh): a bootstrap
    # when the staleness rule asks for one, then auto-association of what changed (--no-people: off).
    update_people_after_index: bool = True
    hdbscan_min_cluster_size: int = Field(default=3, ge=2)
    hdbscan_min_samples: int = Field(default=2, ge=1)
    # Every grouping rule's largest cosine distance per embedding model is in one table
    # (photodb.clustering.distances, read with face_distance). FACE_DISTANCES (JSON, e.g.
    # '{"dlib": {"merge": 0.05}}') overrides any rule of any model by name or family. The older
    # settings keep their meaning: CLUSTERING_THRESHOLD is `assign` for ArcFace w600k_r50 and any
    # model without an entry, CLUSTERING_THRESHOLD_DLIB dlib's `assign`, CLUSTERING_THRESHOLDS
    # (JSON, e.g. '{"sface": 0.5}') `assign` by model name or family.
    face_distances: dict[str, dict[Rule, float]] = Field(default_factory=dict)
    clustering_threshold: float = Field(default=0.45, gt=0)
    clustering_threshold_dlib: float | None = Field(default=None, gt=0)
    clustering_thresholds: dict[str, float] = Field(default_factory=dict)
    hdbscan_cluster_selection_method: Literal["eom", "leaf"] = "eom"
    clustering_reduce_dims: int = Field(default=96, ge=2, le=512)  # PCA before HDBSCAN
    clustering_assign_on_detection: bool = True
    clustering_ambiguity_margin: float = Field(default=0.03, ge=0)  # cosine; closer calls go to review
    clustering_staleness_share: float = Field(default=0.2, gt=0)  # new-face share that asks for a rebuild
    # Auto-association's largest centroid distance (`associate` of the distance table):
    # PERSON_ASSOCIATION_THRESHOLD is for ArcFace w600k_r50 and any model without an entry;
    # PERSON_ASSOCIATION_THRESHOLDS (JSON, e.g. '{"dlib": 0.05}') overrides any entry.
    person_association_threshold: float = Field(default=0.8, gt=0)
    person_association_thresholds: dict[str, float] = Field(default_factory=dict)
    # Auto-association also makes a person of a cluster no other cluster joins when it holds at
    # least this many faces (every real face group is someone); 0: only groups of two or more
    # clusters get a person (the spec's rule). 2 leaves weekly's one-face singleton clusters alone.
    association_lone_cluster_min_faces: int = Field(default=2, ge=0)
    # Weekly maintenance turns faces unassigned for longer than this into singleton clusters (0: all).
    unassigned_singleton_days: int = Field(default=30, ge=0)
    # Quality gate (photodb.clustering.quality): faces below a floor stay in the unassigned pool,
    # with the reason. 0 turns a floor off (1 the outlier ceiling). Size: short side of the face in
    # original pixels; sharpness: variance of the Laplacian of the face as a 64 x 64 gray crop;
    # confidence: the face detector's; outlier: the bootstrap's GLOSH score.
    cluster_min_face_size: float = Field(default=36, ge=0)
    cluster_min_sharpness: float = Field(default=50, ge=0)
    cluster_min_face_confidence: float = Field(default=0.6, ge=0, le=1)
    cluster_max_outlier_score: float = Field(default=0.9, ge=0, le=1)

    # Search: SEARCH_MIN_SIMILARITY (JSON, e.g. '{"mobileclip:s2": 0.22}') overrides the similarity
    # floor of text -> photo search per CLIP model name or family (see SEARCH_SIMILARITY_FLOORS);
    # SEARCH_TEXT_LANGUAGE is the PostgreSQL text search configuration (stemming, stop words) of
    # full-text search on LLM descriptions ("english", "german", "simple", ...: \dF in psql).
    search_min_similarity: dict[str, float] = Field(default_factory=dict)
    search_text_language: str = Field(default="english", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    # LLM (enrich-photos). LLM_MODEL: an Anthropic model id the pinned SDK lists (the spec's
    # claude-3-5-sonnet-20241022 is retired). ANTHROPIC_BASE_URL: another endpoint (a proxy, a test
    # server). LLM_MAX_RETRIES: the SDK's retries of 429/5xx/overloaded (backoff, jitter,
    # retry-after); LLM_REASKS: how often a schema-invalid sync reply is sent back with the error.
    llm_provider: Literal["anthropic", "bedrock"] = "anthropic"
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    llm_model: str = "claude-sonnet-5-5"
    llm_max_tokens: int = Field(default=2048, ge=256, le=64_000)
    llm_max_retries: int = Field(default=4, ge=0, le=20)
    llm_reasks: int = Field(default=1, ge=0, le=5)
    llm_timeout_seconds: float = Field(default=120.0, gt=0)
    # Bedrock: BEDROCK_MODEL_ID a Claude model enabled in the account (docs/BEDROCK_SETUP.md);
    # batch jobs read and write s3://BEDROCK_BATCH_S3_BUCKET/BEDROCK_BATCH_S3_PREFIX/ as the role
    # BEDROCK_BATCH_ROLE_ARN. *_ENDPOINT_URL: another endpoint (VPC endpoint, proxy, test server).
    bedrock_model_id: str = "anthropic.claude-sonnet-4-5-20250929-v1:0"
    aws_region: str = "us-east-1"
    aws_profile: str | None = None
    bedrock_batch_s3_bucket: str | None = None
    bedrock_batch_s3_prefix: str = "photodb-batches"
    bedrock_batch_role_arn: SecretStr | None = None
    bedrock_runtime_endpoint_url: str | None = None
    bedrock_endpoint_url: str | None = None
    s3_endpoint_url: str | None = None

    # Batch processing
    batch_size: int = Field(default=100, ge=1)
    min_batch_size: int = Field(default=10, ge=1)
    batch_check_interval: float = Field(default=300, gt=0)  # seconds between looks at running batches

    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator(
        "aws_profile",
        "anthropic_api_key",
        "anthropic_base_url",
        "bedrock_batch_s3_bucket",
        "bedrock_batch_role_arn",
        "bedrock_runtime_endpoint_url",
        "bedrock_endpoint_url",
        "s3_endpoint_url",
        "database_url",
        "models_dir",
        "detection_model_path",
        "detection_model_sha256",
        "arcface_model_path",
        "arcface_model_sha256",
        "mivolo_model_path",
        "mivolo_model_sha256",
        "clip_model_path",
        "clip_model_sha256",
        "clip_model_config",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url", mode="after")
    @classmethod
    def _libpq_url(cls, value: SecretStr | None) -> SecretStr | None:
        """Refuse what libpq cannot parse now, rather than as a traceback at the first connection."""
        if value is None:
            return None
        try:
            params = conninfo_to_dict(value.get_secret_value())
        except psycopg.ProgrammingError:
            raise ValueError("not a PostgreSQL connection URL") from None
        if not all(port.isdigit() for port in str(params.get("port") or "5432").split(",")):
            raise ValueError("port is not a number")
        return value

    @field_validator("clustering_thresholds", "person_association_thresholds")
    @classmethod
    def _positive_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name, threshold in value.items() if not threshold > 0]
        if bad:
            raise ValueError(f"thresholds must be > 0 (cosine distances): {', '.join(bad)}")
        return value

    @field_validator("face_distances")
    @classmethod
    def _distances(cls, value: dict[str, dict[Rule, float]]) -> dict[str, dict[Rule, float]]:
        bad = [f"{model}.{rule}" for model, row in value.items() for rule, d in row.items() if not 0 < d <= 2]
        if bad:
            raise ValueError(f"distances are cosine distances above 0 and at most 2: {', '.join(bad)}")
        return value

    @field_validator("search_min_similarity")
    @classmethod
    def _similarities(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name, floor in value.items() if not -1 <= floor <= 1]
        if bad:
            raise ValueError(f"similarity floors are cosine similarities in -1..1: {', '.join(bad)}")
        return value

    def search_min_similarity_for(self, clip_model: str) -> float:
        """The similarity floor of text -> photo search for embeddings of this CLIP model."""
        table = {**SEARCH_SIMILARITY_FLOORS, **self.search_min_similarity}
        for key in (clip_model, clip_model.split(":", 1)[0]):
            if key in table:
                return table[key]
        return SEARCH_SIMILARITY_FLOORS["openclip"]

    @property
    def models_root(self) -> Path:
        """MODELS_DIR, or PHOTODB_HOME/models: never relative to the current directory."""
        return (self.models_dir or self.photodb_home / "models").expanduser().absolute()

    @property
    def detection_model_file(self) -> Path:
        return self._model_file(self.detection_model_path, "yolov8x_person_face.pt")

    @property
    def arcface_model_file(self) -> Path:
        return self._model_file(self.arcface_model_path, "buffalo_l/w600k_r50.onnx")

    @property
    def mivolo_model_file(self) -> Path:
        return self._model_file(self.mivolo_model_path, "mivolo_d1.pth.tar")

    @property
    def clip_model_file(self) -> Path:
        return self._model_file(self.clip_model_path, "mobileclip_s2.safetensors")

    def _model_file(self, explicit: Path | None, default: str) -> Path:
        return explicit.expanduser() if explicit is not None else self.models_root / default

    @cached_property
    def images_dir(self) -> Path:
        """Where normalized PNGs go: IMG_PATH, or a folder under PHOTODB_HOME."""
        return (self.img_path or self.photodb_home / "images").expanduser()

    @property
    def library(self) -> str:
        """Which library the commands work on: PHOTODB_HOME for the embedded server, else the
        DATABASE_URL's host, port and database (never its user or password)."""
        if self.database_url is None:
            return str(self.photodb_home.expanduser().absolute())
        try:
            parts = conninfo_to_dict(self.database_url.get_secret_value())
        except Exception:  # validated when read; a server-side detail must not stop a report
            return "DATABASE_URL"
        host = str(parts.get("host") or "localhost")
        port = f":{parts['port']}" if parts.get("port") else ""
        return f"{host}{port}/{parts.get('dbname') or '(default database)'}"

    @cached_property
    def pgdata_dir(self) -> Path:
        return self.photodb_home.expanduser() / "pgdata"


def load_settings(**overrides: object) -> Settings:
    """The settings, or a ConfigurationError whose message is one line per invalid variable or `.env` line."""
    env_file = overrides.get("_env_file", ENV_FILE)
    env_path = Path(str(env_file)).absolute() if env_file is not None else None
    check_env_file(env_path)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise describe_validation_error(error, Settings, env_path) from None
