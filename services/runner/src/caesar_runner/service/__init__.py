"""The runner's use cases: claim an attempt, run it, report it, resume or hand it back."""
