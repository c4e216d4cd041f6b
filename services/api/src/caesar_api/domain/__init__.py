"""The api's pure domain: request parsing, v1.0 response shapes, status messages (no I/O)."""
