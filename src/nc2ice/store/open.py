"""Opening a store the way a reader does, from what a user types: a path or URL."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from nc2ice.access import Access, normalize_url
from nc2ice.logs import quiet_libraries
from nc2ice.store.repository import BRANCH, open_repository


def open_store_dataset(
    store: str,
    access: Access | None = None,
    group: str | None = None,
    snapshot: str | None = None,
    decode: bool = True,
) -> xr.Dataset:
    """A store as ``xr.open_zarr`` opens it (the branch tip, or one snapshot), with the
    attributes as the netCDF files had them.

    ``store`` is a local path or a ``file://`` / ``s3://`` URL; ``access`` says how S3 is
    reached (the workflow's config: ``Access.from_config(config)``), anonymous by default.
    Zarr attributes are JSON, which drops the width of numbers (a float32 ``scale_factor``
    reads as a Python float) and cannot hold NaN; the commit records both in the snapshot's
    metadata, and this puts them back.  ``decode=False`` gives the numbers as stored.
    """
    quiet_libraries()
    repo = open_repository(normalize_url(store), access or Access())
    if snapshot:
        session = repo.readonly_session(snapshot_id=snapshot)
    else:
        session = repo.readonly_session(branch=BRANCH)
    ds = xr.open_zarr(
        session.store, consolidated=False, group=group or None, chunks=None, decode_cf=decode
    )
    metadata = _dataset_metadata(repo, snapshot, group or "")
    inside = (group or "").removeprefix(metadata.get("group", "")).strip("/")
    return restore_attributes(ds, metadata.get("attributes", {}), inside)


def _dataset_metadata(repo: Any, snapshot: str | None, group: str) -> dict[str, Any]:
    """The metadata of the last commit of the dataset holding ``group`` (in a repository
    shared by datasets, the branch's tip may be another dataset's commit)."""
    history = repo.ancestry(snapshot_id=snapshot) if snapshot else repo.ancestry(branch=BRANCH)
    for info in history:
        metadata = dict(info.metadata or {})
        mine = metadata.get("group", "")
        if "dataset" in metadata and (not mine or f"{group}/".startswith(f"{mine}/")):
            return metadata
    return {}


def restore_attributes(ds: xr.Dataset, recorded: dict[str, Any], group: str) -> xr.Dataset:
    """Give attributes back the numpy types and non-finite values the commit recorded."""
    arrays, groups = recorded.get("arrays", {}), recorded.get("groups", {})
    ds.attrs = _restored(ds.attrs, groups.get(group, {}))
    for name, var in ds.variables.items():
        var.attrs = _restored(var.attrs, arrays.get(f"{group}/{name}".lstrip("/"), {}))
    return ds


def _restored(attrs: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    if not entry:
        return attrs
    out = dict(attrs)
    for key in entry.get("nonfinite", []):
        if key in out:
            out[key] = _nonfinite(out[key])
    for key, name in entry.get("types", {}).items():
        if key in out:
            value = np.asarray(out[key], dtype=name)
            out[key] = value if value.ndim else value[()]
    return out


def _nonfinite(value: Any) -> Any:
    if isinstance(value, list):
        return [_nonfinite(v) for v in value]
    words = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    return words.get(value, value) if isinstance(value, str) else value
