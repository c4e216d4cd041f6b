"""Where a job is in the scheduler's hands (its ``phase``), apart from its public state.

The public state (QUEUED, RUNNING...) is what users see; the phase is what the scheduler
acts on: only ``waiting`` jobs are dispatched, only ``dispatched`` ones hold a slot; ``held`` ones
wait for their owner to fall below quota, then become ``waiting``.
"""

from __future__ import annotations

from typing import Final

WAITING: Final = "waiting"  # admitted (QUEUED), not yet sent to a runner pool
HELD: Final = "held"  # admitted while its owner is over quota (HELD): not dispatched
DISPATCHED: Final = "dispatched"  # RunJob sent; the job holds a slot until it ends
FINISHED: Final = "finished"  # terminal
EARLY_CANCEL: Final = "early-cancel"  # a cancel overtook its JobSubmitted
