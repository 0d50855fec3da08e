"""Settings of the metadata service: one pydantic-settings object, environment prefix ``NEXUS_API_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nexus.errors import NexusError

DEV_SECRET = "nexus-development-secret-change-me-0123456789"


_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
_DATABASE_URL_EXAMPLES = "sqlite:///path/nexus.db or postgresql://user:password@host:5432/nexus"


class ServiceSettings(BaseSettings):
    """Every knob of the metadata service, read from ``NEXUS_API_*`` environment variables.

    Defaults run everything embedded: a SQLite file, objects in a local folder, in-memory rate limits.

    Video processing: ``detector_model`` (a path, ``models:/name@alias`` or ``s3://`` URI) is the default
    model; ``process_on_upload`` queues a job for every upload when a default model is set;
    ``processing_workers`` jobs run at once in this process (0: none, another process runs them), which
    also polls the database every ``processing_poll_seconds`` for jobs queued elsewhere. A request may
    name its own model only as a URI or a file under ``local_model_dirs``, and a file read as a live
    stream only under ``stream_file_dirs`` (both default to folders under ``home``).

    Example:
        >>> s = ServiceSettings(database_url="sqlite+aiosqlite:///:memory:")
        >>> s.env, s.storage_backend
        ('development', 'local')
    """

    model_config = SettingsConfigDict(env_prefix="NEXUS_API_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=1, le=65535)
    home: Path = Field(default_factory=lambda: Path(".nexus").resolve())
    database_url: str | None = None
    db_pool_size: int = Field(default=5, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_pre_ping: bool = False
    migrate_on_startup: bool = True
    workers: int = Field(default=1, ge=1, le=64)  # processes serving requests (nexus api --workers)

    secret_key: SecretStr | None = None
    jwt_algorithm: Literal["HS256"] = "HS256"
    access_token_minutes: int = Field(default=15, ge=1)
    refresh_token_days: int = Field(default=7, ge=1)
    bootstrap_admin_username: str | None = None
    bootstrap_admin_password: SecretStr | None = None

    rate_limit_per_user: str = "600/minute"
    rate_limit_per_ip: str = "1200/minute"
    rate_limit_storage: str = "memory://"

    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path | None = None
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_bucket: str = "nexus"
    s3_secure: bool = False
    s3_region: str | None = None
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1)  # JSON bodies; uploads have their own

    detector_model: str | None = None
    detector_device: str = Field(default="cpu", pattern=r"^(cpu|cuda(:\d+)?)$")
    process_on_upload: bool = True
    processing_workers: int = Field(default=1, ge=0, le=64)
    processing_poll_seconds: float = Field(default=5.0, gt=0)
    local_model_dirs: list[Path] | None = None
    stream_file_dirs: list[Path] | None = None
    max_streams: int = Field(default=4, ge=0, le=256)

    cors_origins: list[str] = Field(default_factory=list)
    gzip_minimum_size: int = 1024
    log_json: bool = True
    log_level: str = "INFO"

    pipeline_runs_dir: Path | None = None  # roots of launched local runs; <home>/pipeline-runs by default
    kfp_host: str | None = None  # submit launched runs to this Kubeflow Pipelines host instead
    max_running_pipelines: int = Field(default=1, ge=0)  # local runs at once; 0 keeps launched runs queued
    run_poll_seconds: float = Field(default=2.0, gt=0, le=3600)
    run_cancel_grace_seconds: float = Field(default=5.0, ge=0, le=600)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str | None) -> str | None:
        """The async driver for a plain ``sqlite://`` or ``postgresql://`` URL; other schemes refused."""
        if url is None:
            return None
        scheme, separator, rest = url.strip().partition("://")
        if not separator:
            raise ValueError(f"{url!r} is not a database URL; use {_DATABASE_URL_EXAMPLES}")
        driver = _ASYNC_DRIVERS.get(scheme.lower())
        if driver is None:
            raise ValueError(f"database scheme {scheme!r} is not supported; use {_DATABASE_URL_EXAMPLES}")
        return f"{driver}://{rest}"

    @model_validator(mode="after")
    def _fill_defaults(self) -> ServiceSettings:
        if self.database_url is None:
            self.database_url = f"sqlite+aiosqlite:///{self.home / 'nexus.db'}"
        if self.storage_dir is None:
            self.storage_dir = self.home / "objects"
        if self.local_model_dirs is None:
            self.local_model_dirs = [self.home / "models"]
        if self.stream_file_dirs is None:
            self.stream_file_dirs = [self.home / "media"]
        return self

    @property
    def jwt_secret(self) -> str:
        """The signing secret; production refuses to run without an explicit one.

        Raises:
            NexusError: ``env`` is ``production`` and ``NEXUS_API_SECRET_KEY`` is unset or too short.
        """
        if self.secret_key is not None and self.secret_key.get_secret_value():
            secret = self.secret_key.get_secret_value()
            if self.env == "production" and len(secret) < 32:
                raise NexusError("NEXUS_API_SECRET_KEY must be at least 32 characters in production")
            return secret
        if self.env == "production":
            raise NexusError("NEXUS_API_SECRET_KEY must be set when NEXUS_API_ENV=production")
        return DEV_SECRET


def settings_problems(error: ValidationError) -> str:
    """One line per bad setting, naming its environment variable, for a CLI error.

    Example:
        >>> try:
        ...     ServiceSettings(port=0)
        ... except ValidationError as error:
        ...     print(settings_problems(error))
        port (NEXUS_API_PORT): Input should be greater than or equal to 1, got 0
    """
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        where = f"{field} (NEXUS_API_{field.upper()}): " if field else ""
        message = str(problem["msg"]).removeprefix("Value error, ")
        got = f", got {problem['input']!r}" if field and "input" in problem else ""
        lines.append(f"{where}{message}{got}")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> ServiceSettings:
    """The process-wide settings (read once from the environment)."""
    return ServiceSettings()
