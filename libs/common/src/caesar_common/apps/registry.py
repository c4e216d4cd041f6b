"""The apps this service knows, by v1 name.

Adding an app means writing its module (an :class:`~caesar_common.apps.base.App`
subclass, mostly an option table) and adding one line to ``_ALL`` below. The order is
the one ``GET /apps`` lists, the old service's order first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from caesar_common.apps.aegean import AegeanApp
from caesar_common.apps.base import App
from caesar_common.apps.bdsf import BdsfApp
from caesar_common.apps.caesar import CaesarApp
from caesar_common.apps.cutex import CutexApp
from caesar_common.apps.mrcnn import MrcnnApp
from caesar_common.apps.sfind import SfindApp
from caesar_common.apps.trivial import TrivialApp

__all__ = ["APPS", "app_names", "get_app"]

_ALL: Final[tuple[App, ...]] = (
    CaesarApp(),
    MrcnnApp(),
    AegeanApp(),
    CutexApp(),
    BdsfApp(),
    SfindApp(),
)

# Test-only apps, for soak and chaos runs; a production deployment never sets this.
TEST_APPS_ENABLED: Final = os.environ.get("CAESAR_ENABLE_TEST_APPS", "").lower() == "true"
_TEST_APPS: Final[tuple[App, ...]] = (TrivialApp(),) if TEST_APPS_ENABLED else ()

APPS: Final[Mapping[str, App]] = MappingProxyType({app.name: app for app in (*_ALL, *_TEST_APPS)})
"""Every known app by name, including those no runner of this deployment can run."""


def get_app(name: str) -> App | None:
    """The app called ``name``, or ``None`` (the api answers ``Unknown app <name>!``)."""
    return APPS.get(name)


def app_names() -> list[str]:
    """The names ``GET /apps`` returns, in registry order."""
    return list(APPS)
