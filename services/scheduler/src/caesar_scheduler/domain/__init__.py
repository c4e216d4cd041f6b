"""Pure scheduling rules: admission, pool routing, retries, runner capacity, fair share."""
