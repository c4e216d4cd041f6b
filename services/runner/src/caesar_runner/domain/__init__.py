"""Pure runner logic: environments, limits, outcomes."""
