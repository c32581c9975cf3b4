"""The index of a repository shared by datasets: the root group's ``nc2ice_datasets``
attribute lists each dataset's group path, its time range, file count and the validated
snapshot that last changed it, so a reader finds what is there without walking the tree.

Each publish writes its dataset's entry in a commit of its own on ``main``, right after
``main`` moved to the validated snapshot.  That commit changes the root group's attributes
and nothing else (checked before it is written): it is the one commit on ``main`` that no
validation read, and it holds no value of any dataset.  Two runs writing the index at once
conflict on the root's attributes; the later one reads the index again and retries.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import icechunk
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from nc2ice.errors import CommitError
from nc2ice.store.repository import BRANCH

log = logging.getLogger(__name__)
INDEX = "nc2ice_datasets"
TRIES = 20


def index_entry(repo: icechunk.Repository, published: dict[str, Any], concat_dim: str | None):
    """What the index says of a dataset just published: read from its group on ``main``."""
    session = repo.readonly_session(snapshot_id=published["snapshot"])
    ds = xr.open_zarr(session.store, group=published["group"], consolidated=False, chunks=None)
    dim = concat_dim if concat_dim in ds.coords else ("time" if "time" in ds.coords else None)
    entry = {
        "dataset": published["dataset"],
        "snapshot": published["validated_snapshot"],
        "variables": sorted(str(v) for v in ds.data_vars),
        "files": published.get("files"),
        "published": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if dim is not None and ds[dim].size:
        entry["dimension"] = dim
        entry["range"] = [_text(ds[dim].values[0]), _text(ds[dim].values[-1])]
    return entry


def write_index(repo: icechunk.Repository, group: str, entry: dict[str, Any]) -> str | None:
    """Put ``entry`` under ``group`` in the index on ``main``; the new snapshot, or None if
    the index said so already."""
    for _ in range(TRIES):
        session = repo.writable_session(BRANCH)
        root = zarr.open_group(session.store, mode="r+", zarr_format=3)
        index = dict(root.attrs.get(INDEX) or {})
        same = {k: v for k, v in (index.get(group) or {}).items() if k != "published"}
        if same == {k: v for k, v in entry.items() if k != "published"}:
            return None
        index[group] = entry
        root.attrs[INDEX] = dict(sorted(index.items()))
        _only_the_root(session)
        try:
            return session.commit(
                f"index: {entry['dataset']} ({group}) at snapshot {entry['snapshot']}",
                metadata={"nc2ice_index": entry["dataset"]},
            )
        except icechunk.ConflictError:
            continue  # another dataset's index entry or commit landed first: read it again
    raise CommitError(f"{entry['dataset']}: main kept moving; the index was not updated")


def read_index(repo: icechunk.Repository, snapshot: str | None = None) -> dict[str, Any]:
    """The index as ``main`` (or ``snapshot``) has it: group path -> entry."""
    session = (
        repo.readonly_session(snapshot_id=snapshot)
        if snapshot
        else repo.readonly_session(branch=BRANCH)
    )
    return dict(zarr.open_group(session.store, mode="r", zarr_format=3).attrs.get(INDEX) or {})


def _only_the_root(session: icechunk.Session) -> None:
    """The index's commit changes the root's attributes, nothing of any dataset."""
    diff = session.status()
    other = {
        *diff.new_groups,
        *diff.new_arrays,
        *diff.deleted_groups,
        *diff.deleted_arrays,
        *diff.updated_arrays,
        *diff.updated_chunks,
        *(g for g in diff.updated_groups if g != "/"),
    }
    if other:
        raise CommitError(f"the index's commit would change {sorted(other)[:3]}: not written")


def _text(value: Any) -> str:
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).isoformat()
    return str(value.isoformat() if hasattr(value, "isoformat") else value)
