"""caesar-rest api service: the HTTP gateway (v1.0 compatibility API, uploads, outputs)."""
