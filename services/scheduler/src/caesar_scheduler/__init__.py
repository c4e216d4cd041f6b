"""caesar-rest scheduler: admission, fair-share dispatch to runner pools, cancels."""
