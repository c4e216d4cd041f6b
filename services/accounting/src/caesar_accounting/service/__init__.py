"""Accounting's use cases: what handlers call when a step takes several writes."""
