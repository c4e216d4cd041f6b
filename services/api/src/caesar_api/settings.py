"""Settings of the api service (``CAESAR_*`` environment variables).

Limits that protect the service (upload size, decompressed size of a compressed image,
per-user quotas and concurrent uploads, HTTP timeouts and connections, page sizes) live
here so an operator can tune them without a release; everything has a safe default.
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
    max_decompressed_bytes: int = Field(
        4 * GIB,
        title="Largest decompressed size of a tile-compressed FITS upload",
        description=(
            "A compressed image whose header declares more bytes of pixels than this is refused "
            "with 413 (a few KB can declare gigabytes); the check reads the header and a few "
            "tiles only, never the whole image."
        ),
        gt=0,
    )
    user_quota_bytes: int = Field(
        100 * GIB,
        title="Storage quota per user (bytes)",
        description=(
            "Bytes of live (not deleted) uploads one user may keep; an upload beyond it gets 507 "
            "with the figures and nothing is kept. 0: no limit."
        ),
        ge=0,
    )
    user_quota_files: int = Field(
        10_000,
        title="Storage quota per user (files)",
        description="Live uploads one user may keep; one more gets 403 with the figures. 0: no limit.",
        ge=0,
    )
    max_concurrent_uploads_per_user: int = Field(
        4,
        title="Uploads in progress per user",
        description=(
            "One user's uploads streaming at once in one api process; another gets 429 with Retry-After."
        ),
        ge=1,
    )
    http_header_timeout_s: float = Field(
        75.0,
        title="Request header timeout",
        description=(
            "A connection that has not sent a request's complete headers this long after it "
            "opened (or after the previous answer: idle keep-alive) is closed. Keep it above a "
            "reverse proxy's upstream keep-alive (nginx: 60 s)."
        ),
        gt=0,
    )
    http_body_timeout_s: float = Field(
        60.0,
        title="Request body timeout",
        description=(
            "Longest wait for the next bytes of a request body (an upload), and for the whole "
            "of a small body (a job submission, a form); then 408 and nothing is kept."
        ),
        gt=0,
    )
    upload_min_bytes_per_s: int = Field(
        16 * 1024,
        title="Slowest accepted upload rate",
        description=(
            "After the first http_body_timeout_s, an upload that has averaged fewer bytes per "
            "second than this gets 408 (a client trickling bytes cannot hold a connection "
            "forever). 0: no minimum."
        ),
        ge=0,
    )
    http_max_connections: int = Field(
        512,
        title="Open connections at once",
        description=(
            "Client connections the api serves at once (idle keep-alive ones included); a "
            "request on a connection beyond them gets 503 with Retry-After and the connection "
            "is closed. Health, readiness and metrics are always answered."
        ),
        ge=1,
    )
    allowed_formats: Annotated[tuple[str, ...], NoDecode] = Field(
        ("fits", "png", "jpg", "jpeg", "gif"),
        title="Allowed upload formats",
        description="File extensions (lower case, no dot) accepted by the upload route.",
    )
    reannounce_pending_after_s: float = Field(
        120.0,
        gt=0,
        title="Re-announce a job still PENDING after",
        description=(
            "A job whose JobSubmitted went out but that is still PENDING this long after "
            "(the scheduler never admitted it, or its answer was lost) gets its JobSubmitted "
            "published again; the scheduler admits it, or re-sends what it decided."
        ),
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
    keycloak_url: str = Field(
        "http://127.0.0.1:8180",
        title="Keycloak base URL",
        description="Where the api fetches the realm's signing keys (the certs endpoint).",
    )
    keycloak_realm: str = Field("caesar", title="Keycloak realm")
    keycloak_audience: str = Field(
        "caesar-api",
        title="Expected token audience",
        description="Client id that must be in a token's 'aud'; tokens issued for others are refused.",
    )
    keycloak_issuer: str = Field(
        "",
        title="Expected token issuer",
        description=(
            "The 'iss' tokens must carry; empty: <keycloak_url>/realms/<realm>. Set it when the "
            "api reaches Keycloak under another name than users do (compose: keycloak:8180 "
            "vs localhost:8180)."
        ),
    )
    web_client_id: str = Field(
        "caesar-web",
        title="Keycloak client of the web page",
        description=(
            "The realm's public browser client the page at / signs in with (authorization code "
            "with PKCE); its redirect URIs must include the api's URL."
        ),
    )
    admin_role: str = Field(
        "admin", title="Admin realm role", description="Holders see and manage every user's files and jobs."
    )
    user_role: str = Field(
        "user",
        title="Realm role required to use the api",
        description="A valid token without this role (or the admin role) gets 403; empty: any user.",
    )
    token_leeway_s: float = Field(
        5.0, title="Clock skew allowed on exp/nbf", description="Seconds.", ge=0, le=300
    )
    jwks_refresh_interval_s: float = Field(
        10.0,
        title="Least time between key re-fetches",
        description="An unknown key id re-fetches the realm's keys at most this often.",
        gt=0,
    )

    @property
    def expected_issuer(self) -> str:
        """The issuer tokens must name: configured, or derived from the Keycloak URL."""
        if self.keycloak_issuer:
            return self.keycloak_issuer.rstrip("/")
        return f"{self.keycloak_url.rstrip('/')}/realms/{self.keycloak_realm}"

    runnable_executors: Annotated[tuple[str, ...], NoDecode] = Field(
        ("local", "slurm"),
        title="Executor kinds this deployment has",
        description="Jobs of apps that need none of these are refused at submission.",
    )
    accounting_url: str = Field(
        "http://127.0.0.1:8084",
        title="Accounting service base URL",
        description=(
            "Where the api asks the accounting service's internal HTTP API for usage figures "
            "(v1 /accounting and /appstats, /api/v2/accounting/usage)."
        ),
    )
    accounting_timeout_s: float = Field(
        3.0,
        title="Longest wait for the accounting service",
        description=(
            "A usage request that accounting has not answered in this many seconds (or that it "
            "refuses, or that cannot connect) gets 503 with Retry-After."
        ),
        gt=0,
        le=60,
    )
    output_gzip_level: int = Field(
        6,
        title="gzip level of job output archives",
        description="Lower is faster; images of floats barely compress at any level.",
        ge=0,
        le=9,
    )
    # IVOA UWS 1.1 (caesar_api.uws, docs/uws.md).
    uws_max_wait_s: float = Field(
        60.0,
        title="Longest UWS WAIT",
        description=(
            "A UWS job request with ?WAIT blocks at most this many seconds (WAIT=-1 too); "
            "also how long a UWS DELETE of a running job waits for its cancel to take."
        ),
        ge=0,
        le=3600,
    )
    uws_wait_poll_s: float = Field(
        1.0,
        title="UWS WAIT re-read interval",
        description="A blocked UWS request re-reads the job this often (seconds) until it changes.",
        gt=0,
        le=60,
    )
    # Push (Server-Sent Events and webhooks, caesar_api.push).
    sse_heartbeat_s: float = Field(
        15.0,
        title="SSE keep-alive interval",
        description="A ': keep-alive' comment goes out on a quiet stream this often (proxies keep it open).",
        gt=0,
        le=300,
    )
    sse_queue_size: int = Field(
        256,
        title="Events queued per SSE stream",
        description=(
            "A stream whose client reads so slowly that this many events wait for it is "
            "disconnected (it resumes with Last-Event-ID); bounds the api's memory per stream."
        ),
        ge=1,
    )
    sse_max_streams_per_user: int = Field(
        8,
        title="Open SSE streams per user and api process",
        description="One more gets 429 with Retry-After.",
        ge=1,
    )
    sse_max_stream_s: float = Field(
        3600.0,
        title="Longest SSE stream",
        description=(
            "The server ends a stream after this long (?timeout_s= asks for less); the client "
            "reconnects with Last-Event-ID and misses nothing."
        ),
        ge=1,
    )
    sse_resume_margin_s: float = Field(
        30.0,
        title="Replay margin of the per-user stream",
        description=(
            "A per-user stream resumed with Last-Event-ID replays the states applied up to this "
            "long before the given event too: it covers clock skew between replicas and events "
            "still in flight, at the price of sending some events twice."
        ),
        ge=0,
    )
    sse_settle_s: float = Field(
        5.0,
        title="Longest wait for the read model before a final state is pushed",
        description=(
            "Live events can reach a stream before the projection has written them; a final "
            "state is sent once GET /api/v2/jobs/{id} and the result routes show it too, or "
            "after this long in any case."
        ),
        ge=0,
        le=60,
    )
    push_queue_max_length: int = Field(
        100_000,
        title="Length bound of the process's push queue",
        description=(
            "The per-process queue api.push.<instance> drops its oldest events beyond this "
            "many (a process that stopped reading cannot fill the broker)."
        ),
        ge=1,
    )
    webhooks_allow_private: bool = Field(
        False,
        title="Allow webhooks to private addresses",
        description=(
            "Off: a webhook URL resolving to a loopback, private, link-local, multicast, "
            "reserved or unspecified address is refused at registration and at delivery."
        ),
    )
    webhooks_max_per_user: int = Field(100, title="Webhooks per user", description="One more gets 403.", ge=1)
    webhook_timeout_s: float = Field(
        10.0,
        title="Webhook request timeout",
        description="Whole request (connect, send, answer) to a webhook; beyond it the attempt failed.",
        gt=0,
        le=120,
    )
    webhook_max_attempts: int = Field(
        8, title="Delivery attempts", description="Attempts before a delivery is given up.", ge=1, le=50
    )
    webhook_retry_base_s: float = Field(
        10.0,
        title="First retry delay",
        description="The n-th retry waits base * 2^(n-1) seconds, at most webhook_retry_max_s.",
        gt=0,
    )
    webhook_retry_max_s: float = Field(
        3600.0, title="Longest retry delay", description="Cap of the exponential backoff.", gt=0
    )
    webhook_poll_s: float = Field(
        2.0,
        title="Delivery loop interval",
        description="How often each api process looks for due deliveries (new ones are sent at once).",
        gt=0,
    )
    webhook_concurrency: int = Field(8, title="Deliveries in flight per api process", ge=1, le=256)

    @field_validator("allowed_formats", "runnable_executors", mode="before")
    @classmethod
    def _split_formats(cls, value: object) -> object:
        """Accept ``fits,png`` from the environment as well as a JSON list."""
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple):
            return tuple(str(v).strip().lower().lstrip(".") for v in value)
        return value
