"""Pure scheduling logic: pool routing, runner capacity, fair share."""
