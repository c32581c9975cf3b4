"""What a validation compares, and in how many jobs.

Every snapshot on ``main`` passed validation, so a new snapshot needs comparing only where it
differs from the dataset's last one: every file a creation holds, every new file of an
append (and an old one whose last chunk the append rewrote), what a rewrite touched.  The
files it keeps as they were are taken on trust from that snapshot, except a sample of them,
compared again each time (``recheck_files``), which catches a store whose old part broke.
The files to compare are shared out among the validation's parts, one job each, one for
every two batches of files (a file costs a validation about what it costs a scan; fewer,
larger jobs start Python fewer times), so the number of jobs is known once the files are
listed.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any


def plan(
    files: list[str],
    trusted: list[str],
    trusted_from: str | None,
    *,
    seed: str,
    recheck: int,
    parts: int,
) -> dict[str, Any]:
    """The validation of a snapshot: ``compare`` (what changed), ``recheck`` (a sample of
    the rest, different for every snapshot), ``trusted`` (the rest, and the snapshot whose
    validation vouches for them) and ``parts`` (the files of each validation job)."""
    kept = set(trusted)
    compare = [f for f in files if f not in kept]
    pool = [f for f in files if f in kept]
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))
    again = set(rng.sample(pool, min(recheck, len(pool))))
    rechecked = [f for f in pool if f in again]
    todo = [f for f in files if f in again or f not in kept]
    count = max(1, parts)
    share, extra = divmod(len(todo), count)
    bounds = [n * share + min(n, extra) for n in range(count + 1)]
    return {
        "compare": compare,
        "recheck": rechecked,
        "trusted": {
            "snapshot": trusted_from,
            "files": [f for f in pool if f not in again],
        },
        "parts": [todo[a:b] for a, b in zip(bounds, bounds[1:])],
    }


BATCHES_PER_PART = 2


def part_count(batches: int) -> int:
    """How many validation jobs a dataset of ``batches`` batches of files has."""
    return max(1, math.ceil(batches / BATCHES_PER_PART))
