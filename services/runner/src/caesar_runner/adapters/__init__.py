"""I/O adapters of the runner."""
