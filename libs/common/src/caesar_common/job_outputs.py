"""Which files of a job directory are the job's outputs (pure).

A job directory also holds what is not the job's result: the scratch directory ``tmp/``
(the steps' ``TMPDIR`` and ``HOME``, where matplotlib, astropy and friends leave
``.cache/`` and ``.config/``) and hidden files (a temporary being written and renamed,
one a crash left behind). The runner's manifest and the api's archive use this one rule,
so the files a client can list, download one by one and get in the tar.gz agree.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Final

from caesar_common.layout import JOB_TMP_DIR

__all__ = ["SCRATCH_DIR", "is_job_output"]

SCRATCH_DIR: Final = JOB_TMP_DIR


def is_job_output(relative: str) -> bool:
    """Whether the path ``relative`` (POSIX, inside the job directory) is a job output.

    False for the scratch directory and anything in it, and for every path with a hidden
    component (a name starting with a dot) at any depth.
    """
    parts = PurePosixPath(relative).parts
    if not parts or parts[0] == SCRATCH_DIR:
        return False
    return not any(part.startswith(".") for part in parts)
