"""The web page for astronomers: static files in ``static/`` and what the api says about them.

The page is plain ES modules (no framework, no build step): ``static/`` is served as it
is by :mod:`caesar_api.entrypoints.routes.web`. This package holds the pure parts: which
files exist and their media types, the page's Content-Security-Policy, and the public
configuration the page reads before signing in.
"""

from caesar_api.web.page import STATIC_DIR, WebAsset, content_security_policy, web_assets, web_config

__all__ = ["STATIC_DIR", "WebAsset", "content_security_policy", "web_assets", "web_config"]
