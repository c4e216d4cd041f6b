"""Settings of the accounting service (``CAESAR_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field

from caesar_common.settings import ServiceSettings


class AccountingSettings(ServiceSettings):
    """Connection settings plus the gauge refresh period."""

    http_port: int = Field(8084, title="HTTP port (health, readiness, metrics, usage reports)")
    metrics_interval_s: float = Field(
        30.0,
        title="Gauge refresh period",
        description="How often caesar_accounting_bytes_stored is recomputed from the database.",
    )
    quota_recheck_s: float = Field(
        60.0,
        title="How often users over quota are judged again",
        description="Their usage can fall without an event of theirs (a new month begins).",
    )
