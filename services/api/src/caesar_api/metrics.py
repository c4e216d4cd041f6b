"""Prometheus metrics of the api.

``caesar_api_jobs_submitted_total`` moves once per job, right after the write that stores
the job together with its ``JobSubmitted`` event: the one place a submission becomes real
(a refused request never counts, a redelivered event cannot count twice), so the api
replicas' counters sum to the jobs submitted. Per app, a label bounded by the app registry;
every app's series exists at 0 from the start, so ``rate()`` sees the first submission too
and a dashboard lists every app.
"""

from __future__ import annotations

from prometheus_client import Counter

from caesar_common.apps import app_names

JOBS_SUBMITTED = Counter(
    "caesar_api_jobs_submitted_total", "Jobs accepted and stored with their JobSubmitted event", ["app"]
)
for _app in app_names():
    JOBS_SUBMITTED.labels(_app)
