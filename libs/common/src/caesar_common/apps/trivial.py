"""``trivial``: a test-only app that sleeps and exits with a chosen code.

It exists for soak runs, chaos tests and benchmarks of the service itself, where a real
finder's minutes of CPU would hide what is being measured. It is registered only when
``CAESAR_ENABLE_TEST_APPS=true`` (see :mod:`caesar_common.apps.registry`), never in a
production deployment.
"""

from __future__ import annotations

import sys
from typing import Final

from caesar_common.apps.base import App, OptionGroup, PlanContext, Resources, Step, ValidatedParams

__all__ = ["TrivialApp"]

_RUN = OptionGroup("RUN")

# Sleeps, writes a small result file (so outputs are not empty) and exits with the code.
# While it sleeps it prints the wall clock every 50 ms: the soak proves from these step
# logs that no two attempts of a job were ever alive at once.
_SCRIPT: Final = (
    "import sys, time\n"
    "end = time.time() + float(sys.argv[1])\n"
    "while True:\n"
    "    now = time.time()\n"
    "    print(f'alive {now:.3f}', flush=True)\n"
    "    if now >= end:\n"
    "        break\n"
    "    time.sleep(min(0.05, end - now))\n"
    "open('result.txt', 'w').write('slept ' + sys.argv[1] + ' s\\n')\n"
    "sys.exit(int(sys.argv[2]))\n"
)


class TrivialApp(App):
    """Sleep for ``seconds`` then exit with ``exit-code`` (tests only)."""

    name = "trivial"
    version = "1"
    description = "Test-only app: sleeps, writes result.txt and exits with the given code."
    executors = frozenset({"local", "slurm", "k8s"})
    default_wall_time_s = 600
    options = (
        _RUN.number("seconds", 0.1, 0, 3600, "Seconds to sleep"),
        _RUN.integer("exit-code", 0, 0, 255, "Exit code of the process"),
    )

    def plan(self, params: ValidatedParams, ctx: PlanContext) -> list[Step]:
        self._check_params(params)
        values = params.effective
        python = str(ctx.bin_dir / "python") if (ctx.bin_dir / "python").exists() else sys.executable
        argv = (python, "-c", _SCRIPT, str(float(values["seconds"])), str(values["exit-code"]))
        return [Step("sleep", argv)]

    def resources(self, params: ValidatedParams, image_bytes: int) -> Resources:
        return Resources(cores=1, memory_mb=128)
