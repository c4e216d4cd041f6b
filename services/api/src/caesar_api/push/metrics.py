"""Prometheus metrics of push: open streams, slow clients cut off, webhook attempts.

``caesar_api_sse_evicted_total`` moving means clients read too slowly (or a proxy
buffers); each one resumed with Last-Event-ID, so nothing was lost, but the cause is
worth a look. Outcomes of delivery attempts are a small fixed set.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SSE_STREAMS = Gauge("caesar_api_sse_streams", "Server-Sent Events streams open in this process")
SSE_EVICTED = Counter(
    "caesar_api_sse_evicted_total",
    "SSE streams closed because the client let its queue of events fill (slow client)",
)
PUSH_EVENTS = Counter("caesar_api_push_events_total", "Job state events this process's push feed received")
WEBHOOK_ATTEMPTS = Counter(
    "caesar_api_webhook_attempts_total",
    "Webhook delivery attempts, by outcome (delivered, retry, failed, refused)",
    ["outcome"],
)
for _outcome in ("delivered", "retry", "failed", "refused"):
    WEBHOOK_ATTEMPTS.labels(_outcome)
