"""Executors: interchangeable backends that run a job's steps (local process, Slurm, Kubernetes)."""
