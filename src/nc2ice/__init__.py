"""nc2ice: NetCDF archives as one virtual Zarr dataset in a versioned Icechunk store.

import nc2ice
ds = nc2ice.open("results/stores/demo.icechunk")                  # what main holds
tree = nc2ice.open("s3://bucket/all.icechunk", endpoint_url="https://projects.pawsey.org.au")
ds = nc2ice.open_store_dataset("results/stores/demo.icechunk", snapshot="...")  # any snapshot
"""

from __future__ import annotations

from typing import Any

__all__ = ["open", "open_store_dataset"]


def __getattr__(name: str) -> Any:
    # Lazily: the workflow imports nc2ice.config at parse time, without the data stack.
    if name in __all__:
        from nc2ice.store import open as opening

        return getattr(opening, name)
    raise AttributeError(f"module 'nc2ice' has no attribute {name!r}")
