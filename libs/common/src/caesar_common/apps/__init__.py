"""The app registry: what each source finder accepts and how to run it.

One module per app holds its option table; :mod:`caesar_common.apps.base` derives the
v1 describe document, the JSON Schema, validation and the argv from it.
"""

from caesar_common.apps.base import (
    NON_OPTION_INPUTS,
    App,
    ContainerApp,
    NotGreaterThan,
    Option,
    OptionGroup,
    ParameterError,
    PlanContext,
    Resources,
    Step,
    ValidatedParams,
)
from caesar_common.apps.registry import APPS, app_names, get_app

__all__ = [
    "APPS",
    "NON_OPTION_INPUTS",
    "App",
    "ContainerApp",
    "NotGreaterThan",
    "Option",
    "OptionGroup",
    "ParameterError",
    "PlanContext",
    "Resources",
    "Step",
    "ValidatedParams",
    "app_names",
    "get_app",
]
