"""caesar-rest monitor: job timelines, the liveness watchdog and job metrics.

The monitor is a read-side projection of the job events plus one active duty: it is the
component that notices a job stranded by a dead runner (or running past its wall time)
and says so with a ``JobStateChanged`` event, so the scheduler can retry it.
"""
