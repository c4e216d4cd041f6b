"""Settings shared by every service.

Each service subclasses :class:`ServiceSettings`; all read ``CAESAR_*`` environment
variables so one ``.env``/compose file configures the whole stack consistently.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Connection and runtime settings every service needs."""

    model_config = SettingsConfigDict(env_prefix="CAESAR_", extra="ignore")

    amqp_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/",
        title="RabbitMQ URL",
        description="AMQP URL of the broker carrying the caesar.events exchange.",
    )
    mongo_url: str = Field(
        "mongodb://127.0.0.1:27017/?retryWrites=false",
        title="MongoDB URL",
        description="MongoDB URL; retryWrites=false is needed by the secantusdb dev server.",
    )
    mongo_db_prefix: str = Field(
        "caesar",
        title="Database name prefix",
        description="Each service owns the database '<prefix>_<service>'.",
    )
    http_host: str = Field("127.0.0.1", title="HTTP bind address")
    http_port: int = Field(8080, title="HTTP port (health, readiness, metrics; the API itself for api)")
    http_shutdown_grace_s: float = Field(
        30.0, title="At SIGTERM, how long requests in flight (an upload) may take to finish"
    )
    log_level: str = Field("INFO", title="Log level")
    log_json: bool = Field(True, title="JSON logs (set false for console-friendly logs)")
    data_root: Path = Field(Path("/var/lib/caesar/data"), title="Root of uploaded files")
    jobs_root: Path = Field(Path("/var/lib/caesar/jobs"), title="Root of job directories")
    outbox_sweep_interval_s: float = Field(
        2.0,
        title="Outbox sweep period",
        description="How often the relay re-publishes events a crash left behind.",
    )
    quotas_file: Path | None = Field(
        None,
        title="Quota policy (JSON), the same file for api, scheduler and accounting",
        description="Limits per user with a default and per-role overrides: jobs running at once, "
        "CPU hours per month, bytes stored (caesar_common.quotas). Unset: no quotas.",
    )
    duplicate_publish: bool = Field(
        False,
        title="Publish every event twice (tests only)",
        description="Chaos setting proving that every consumer is idempotent.",
    )

    def database_name(self, service: str) -> str:
        """The database a service owns; services never read another's."""
        return f"{self.mongo_db_prefix}_{service}"
