"""Component schemas generated from the pydantic models of :mod:`.models`.

``models_json_schema`` writes every model once under its class name, and references
between them point straight at ``#/components/schemas/<name>``, so the document has no
``$defs`` of its own. Request models are generated in validation mode (what the server
accepts), response models in serialization mode (what it sends).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from caesar_api.openapi.models import COMPONENT_MODELS, DownloadForm, JobRequest, UploadForm
from caesar_api.openapi.push_models import PUSH_MODELS, PUSH_REQUEST_MODELS
from caesar_api.openapi.v2_models import V2_MODELS, V2_REQUEST_MODELS

Schema = dict[str, Any]
REF_TEMPLATE = "#/components/schemas/{model}"
REQUEST_MODELS: frozenset[type[BaseModel]] = frozenset(
    {JobRequest, UploadForm, DownloadForm, *V2_REQUEST_MODELS, *PUSH_REQUEST_MODELS}
)


def ref(model: type[BaseModel]) -> Schema:
    """A reference to a model's component schema."""
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def component_schemas() -> dict[str, Schema]:
    """Every model's JSON Schema (2020-12, as OpenAPI 3.1 uses), keyed by model name."""
    _, document = models_json_schema(
        [
            (model, "validation" if model in REQUEST_MODELS else "serialization")
            for model in (*COMPONENT_MODELS, *V2_MODELS, *PUSH_MODELS)
        ],
        ref_template=REF_TEMPLATE,
    )
    schemas: dict[str, Schema] = document.get("$defs", {})
    return schemas
