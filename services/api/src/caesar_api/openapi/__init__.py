"""The OpenAPI document of the api, generated from the code.

Schemas come from the pydantic models of :mod:`.models`; each module of paths describes
one group of routes; :mod:`.document` puts them together for a deployment's settings.
Imports go one way only (document -> paths -> operations -> components -> models).
"""

from caesar_api.openapi.document import build_openapi

__all__ = ["build_openapi"]
