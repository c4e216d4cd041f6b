"""caesar-rest runner: runs source-finder jobs through an executor and reports their states."""
