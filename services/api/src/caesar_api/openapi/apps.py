"""Paths of the app registry: the v1 list and describe, the v2 catalogue."""

from __future__ import annotations

from typing import Any

from caesar_api.entrypoints.routes import V1, V2
from caesar_api.openapi.models import AppCatalog, AppDescription, AppList
from caesar_api.openapi.operations import error, json_body, operation, path_param
from caesar_common.apps import app_names

TAG = "apps"


def app_paths() -> dict[str, Any]:
    """``/apps``, ``/app/{name}/describe`` and ``/api/v2/apps``."""
    return {
        f"{V1}/apps": {
            "get": operation(
                "listApps",
                "List the apps",
                {"200": json_body(AppList, "Every app the service knows.")},
                tag=TAG,
            )
        },
        f"{V1}/app/{{name}}/describe": {
            "get": operation(
                "describeApp",
                "Describe an app's options",
                {
                    "200": json_body(AppDescription, "The options."),
                    "400": error("Unknown app (the v1 answer: 'Unknown app <name>!')."),
                },
                tag=TAG,
                parameters=[path_param("name", "An app name.", enum=list(app_names()))],
            )
        },
        f"{V2}/apps": {
            "get": operation(
                "listAppsV2",
                "Apps with JSON Schema, version and availability",
                {"200": json_body(AppCatalog, "Every app, runnable here or not.")},
                tag=TAG,
            )
        },
    }
