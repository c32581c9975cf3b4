"""Writing a plan to Icechunk: arrays, virtual references, copied slabs; one commit.

A commit is all or nothing: nothing reaches the branch until ``session.commit`` succeeds, so
a run killed half way leaves the repository as it was.  A commit whose inputs (manifest
digests and config) equal those of the branch tip is not repeated.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from importlib.metadata import version
from typing import Any

import icechunk
import numpy as np
import zarr
from virtualizarr.codecs import convert_to_codec_pipeline, extract_codecs, zarr_codec_config_to_v3
from xarray.backends.zarr import FillValueCoder

from nc2ice.access import Access
from nc2ice.chunks import read_region
from nc2ice.combine import ArrayPlan, Plan
from nc2ice.manifest import Variable

log = logging.getLogger(__name__)
BRANCH = "main"
PACKAGES = ("nc2ice", "virtualizarr", "icechunk", "zarr", "xarray", "obstore", "h5py", "snakemake")


def package_versions() -> dict[str, str]:
    return {name: version(name) for name in PACKAGES}


def input_digest(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def open_repository(store_url: str, access: Access) -> icechunk.Repository:
    """Open a repository with read access to every container it records."""
    storage = access.storage(store_url)
    if not icechunk.Repository.exists(storage):
        raise FileNotFoundError(f"{store_url}: no Icechunk repository here")
    prefixes = list(icechunk.Repository.open(storage).config.virtual_chunk_containers or {})
    return icechunk.Repository.open(
        storage, authorize_virtual_chunk_access=access.authorize(prefixes)
    )


def _open_for_writing(store_url: str, access: Access, prefixes: list[str]):
    """Open or create a repository with a container for each of ``prefixes``."""
    storage = access.storage(store_url)
    config = access.repository_config(prefixes)
    creds = access.authorize(prefixes)
    exists = icechunk.Repository.exists(storage)
    repository = icechunk.Repository.open if exists else icechunk.Repository.create
    return repository(storage, config=config, authorize_virtual_chunk_access=creds)


def tip_metadata(repo: icechunk.Repository) -> tuple[str, dict[str, Any]]:
    snapshot = next(iter(repo.ancestry(branch=BRANCH)))
    return snapshot.id, dict(snapshot.metadata or {})


def commit_plan(
    plan: Plan,
    *,
    store_url: str,
    access: Access,
    prefixes: list[str],
    message: str,
    metadata: dict[str, Any],
    checksums: dict[str, datetime],
) -> tuple[str, bool]:
    """Write ``plan`` and commit; return the snapshot id and whether a new commit was made."""
    repo = _open_for_writing(store_url, access, prefixes)
    snapshot, tip = tip_metadata(repo)
    if tip.get("input_digest") == metadata["input_digest"]:
        log.info(
            "%s: already holds these inputs (snapshot %s); nothing to commit", store_url, snapshot
        )
        return snapshot, False
    repo.save_config()
    session = repo.writable_session(BRANCH)
    root = zarr.open_group(session.store, mode="w", zarr_format=3)
    root.attrs.update(plan.group_attrs.get("", {}))
    for group, attrs in plan.group_attrs.items():
        if group:
            root.require_group(group).attrs.update(attrs)
    reader = _reader(access)
    for array in plan.arrays.values():
        _write_array(session.store, root, array, checksums, reader)
    snapshot = session.commit(message, metadata=metadata)
    log.info("%s: committed snapshot %s", store_url, snapshot)
    return snapshot, True


def _reader(access: Access) -> Callable[[Variable, tuple[slice, ...]], np.ndarray]:
    return lambda var, region: read_region(var, region, access)


def _write_array(store, root: zarr.Group, array: ArrayPlan, checksums, reader) -> None:
    template = array.template
    loaded = array.data is not None
    dtype = np.dtype(array.data.dtype if loaded else template.dtype)
    codecs = (
        []
        if loaded
        else [*(template.filters or []), *([template.compressor] if template.compressor else [])]
    )
    pipeline = convert_to_codec_pipeline(dtype, [zarr_codec_config_to_v3(dict(c)) for c in codecs])
    filters, serializer, compressors = extract_codecs(pipeline)
    attrs = dict(template.attrs)
    fill = attrs.get("_FillValue")
    if fill is not None:
        attrs["_FillValue"] = FillValueCoder.encode(fill, dtype) if dtype.kind in "fc" else fill
    parent = root.require_group(template.group) if template.group else root
    zarray = parent.create_array(
        name=template.name,
        shape=array.shape,
        chunks=array.chunks,
        dtype=dtype,
        filters=filters,
        serializer=serializer,
        compressors=compressors if not loaded else "auto",
        fill_value=_zarr_fill(fill if fill is not None else template.storage_fill, dtype),
        dimension_names=template.dims,
        attributes=attrs,
    )
    if loaded:
        zarray[...] = array.data
        return
    specs = [
        icechunk.VirtualChunkSpec(
            index=list(index),
            location=url,
            offset=offset,
            length=length,
            last_updated_at_checksum=checksums.get(url),
        )
        for index, (url, offset, length) in array.refs.items()
    ]
    if specs:
        store.set_virtual_refs(template.path, specs, validate_containers=True)
    for lo, hi in array.copy_slabs():
        zarray[lo:hi] = _slab(array, lo, hi, dtype, reader)


def _slab(array: ArrayPlan, lo: int, hi: int, dtype: np.dtype, reader) -> np.ndarray:
    out = np.empty((hi - lo, *array.shape[1:]), dtype=dtype)
    for part in array.parts:
        a, b = max(lo, part.offset), min(hi, part.offset + part.var.shape[0])
        if a >= b:
            continue
        region = (slice(a - part.offset, b - part.offset),) + tuple(
            slice(0, n) for n in array.shape[1:]
        )
        out[a - lo : b - lo] = reader(part.var, region)
    return out


def _zarr_fill(fill: Any, dtype: np.dtype) -> Any:
    if fill is None:
        return None
    if dtype.kind in "SU":
        return fill
    return np.array(fill).astype(dtype).item()


def checksum_time(last_modified: str) -> datetime | None:
    """Icechunk refuses a chunk whose object changed after this; one second of slack for
    servers that round Last-Modified down."""
    if not last_modified:
        return None
    return datetime.fromisoformat(last_modified) + timedelta(seconds=1)
