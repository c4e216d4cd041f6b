"""Code shared by every caesar-rest service: messages, bus, outbox, store, settings, telemetry."""
