"""nc2ice: NetCDF archives as one virtual Zarr dataset in a versioned Icechunk store.

import nc2ice
ds = nc2ice.open_store_dataset("results/stores/demo.icechunk")
"""

from __future__ import annotations

from typing import Any

__all__ = ["open_store_dataset"]


def __getattr__(name: str) -> Any:
    # Lazily: the workflow imports nc2ice.config at parse time, without the data stack.
    if name == "open_store_dataset":
        from nc2ice.store.open import open_store_dataset

        return open_store_dataset
    raise AttributeError(f"module 'nc2ice' has no attribute {name!r}")
