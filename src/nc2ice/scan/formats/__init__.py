"""Format scanners: HDF5/netCDF4 and netCDF3 files to manifests.

Each scanner is a generator: it reads the layout from the bytes at hand, yields the byte
ranges of the values it will load (so a batch scan can fetch them while it parses other
files), and returns the manifest.  ``run_steps`` drives one where the reader fetches by
itself.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nc2ice.model.manifest import Manifest

Ranges = list[tuple[int, int]]  # (offset, length) of bytes a scan will read


def run_steps(steps: Generator[Ranges, None, Manifest]) -> Manifest:
    try:
        while True:
            next(steps)
    except StopIteration as done:
        return done.value
