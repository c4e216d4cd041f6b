"""Pure logic of the monitor: timeline projection and liveness verdicts (no I/O)."""
