"""Stale Snakemake locks after a killed run, cleared safely.

Snakemake locks a working directory with files that a SIGKILL (walltime, OOM killer, a lost
node) leaves behind, and the next run then refuses to start until ``--unlock``.  Each run
of this workflow also holds an operating-system lock for as long as its process lives, which
no kill can leave behind: when a run can take it, no other run is alive in the directory,
so Snakemake's lock files are stale and are removed, with a line saying so.
"""

from __future__ import annotations

import fcntl
import sys
from pathlib import Path
from typing import IO

_held: list[IO[str]] = []  # open for the life of the process: the lock lives as long


def clear_stale_locks(directory: str | Path = ".snakemake") -> bool:
    """Take this run's lock; if no other run held it, remove Snakemake's stale locks.
    True if locks were removed."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / "nc2ice.run.lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return False  # another run is alive: its locks are real
    except OSError:
        handle.close()
        return False  # no locks on this filesystem: leave it to Snakemake
    _held.append(handle)
    stale = list((folder / "locks").glob("*.lock"))
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        print(
            f"nc2ice: removed {len(stale)} Snakemake lock(s) left by a run that was killed "
            "(no other run is working in this directory)",
            file=sys.stderr,
        )
    return bool(stale)
