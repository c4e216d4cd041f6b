"""Thin entrypoints: the aiohttp application and the event consumer."""
