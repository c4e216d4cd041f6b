"""The monitor's use cases: what handlers and loops call when a step takes several writes."""
