"""What the monitor's handlers and loops need; chosen once, in ``bootstrap``.

Its own module so that the handlers and the watchdog loop both depend on it, rather than
the watchdog (a use case) depending on the message handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from caesar_common.events import utcnow
from caesar_monitor.service.ports import Kick, RunnerStore, TimelineStore
from caesar_monitor.settings import MonitorSettings


@dataclass
class MonitorDeps:
    """What the handlers and loops need; chosen once, in ``bootstrap``."""

    timelines: TimelineStore
    runners: RunnerStore
    settings: MonitorSettings
    kick: Kick
    """Ask the outbox relay to publish a timeline's pending events now."""
    clock: Callable[[], datetime] = utcnow
    watching_since: datetime = field(default_factory=utcnow)
    broker_connected: Callable[[], bool] = lambda: True
    """Whether heartbeats can reach us now (the watchdog pauses while they cannot)."""
