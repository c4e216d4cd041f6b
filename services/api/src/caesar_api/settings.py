"""Settings of the api service (``CAESAR_*`` environment variables).

Limits that protect the service (upload size, page sizes) live here so an operator can
tune them without a release; everything has a safe default for a laptop.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from caesar_common.settings import ServiceSettings

GIB = 1024**3
MIB = 1024**2


class ApiSettings(ServiceSettings):
    """Connection settings shared by every service plus the api's own limits."""

    max_upload_bytes: int = Field(
        4 * GIB,
        title="Largest accepted upload",
        description="Uploads beyond this many bytes are refused with 413 and nothing is kept.",
        gt=0,
    )
    upload_chunk_bytes: int = Field(
        MIB,
        title="Upload chunk size",
        description="Bytes read from the request, hashed and written per step; bounds memory.",
        ge=64 * 1024,
        le=64 * MIB,
    )
    allowed_formats: Annotated[tuple[str, ...], NoDecode] = Field(
        ("fits", "png", "jpg", "jpeg", "gif"),
        title="Allowed upload formats",
        description="File extensions (lower case, no dot) accepted by the upload route.",
    )
    default_page_size: int = Field(
        100, title="Default page size", description="Items per list page without ?limit=.", ge=1
    )
    max_page_size: int = Field(
        1000, title="Largest page size", description="Upper bound of ?limit= on lists.", ge=1
    )
    auth_enabled: bool = Field(
        False,
        title="Require bearer tokens",
        description="Off: every caller is the owner 'anonymous' (local use only).",
    )
    runnable_executors: Annotated[tuple[str, ...], NoDecode] = Field(
        ("local", "slurm"),
        title="Executor kinds this deployment has",
        description="Jobs of apps that need none of these are refused at submission.",
    )
    output_gzip_level: int = Field(
        6,
        title="gzip level of job output archives",
        description="Lower is faster; images of floats barely compress at any level.",
        ge=0,
        le=9,
    )

    @field_validator("allowed_formats", "runnable_executors", mode="before")
    @classmethod
    def _split_formats(cls, value: object) -> object:
        """Accept ``fits,png`` from the environment as well as a JSON list."""
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple):
            return tuple(str(v).strip().lower().lstrip(".") for v in value)
        return value
