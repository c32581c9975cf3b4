"""Writing a plan to Icechunk: arrays, virtual references, copied slabs; one commit.

A commit is all or nothing: nothing reaches the branch until ``session.commit`` succeeds, so
a run killed half way leaves the repository as it was.  A commit whose inputs (manifest
digests and config) equal those of the branch tip is not repeated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from importlib.metadata import version
from typing import Any

import icechunk
import numpy as np
import zarr
from xarray.backends.zarr import FillValueCoder

from nc2ice.access import Access
from nc2ice.chunks import read_region
from nc2ice.codecs import zarr_pipeline
from nc2ice.combine import ArrayPlan, Plan
from nc2ice.errors import CommitError
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
    checksums: dict[str, str | datetime],
) -> tuple[str, bool]:
    """Write ``plan`` and commit; return the snapshot id and whether a new commit was made.

    Either the branch gets one new snapshot holding the whole plan, or nothing changes: a
    reference Icechunk refuses stops the commit, and a repository this call created is
    removed again when the first commit fails."""
    layouts = {path: _layout(array) for path, array in plan.arrays.items()}  # fails early
    created = not icechunk.Repository.exists(access.storage(store_url))
    try:
        repo = _open_for_writing(store_url, access, prefixes)
        snapshot, tip = tip_metadata(repo)
        if tip.get("input_digest") == metadata["input_digest"]:
            log.info(
                "%s: already holds these inputs (snapshot %s); nothing to commit",
                store_url,
                snapshot,
            )
            return snapshot, False
        repo.save_config()
        session = repo.writable_session(BRANCH)
        root = zarr.open_group(session.store, mode="w", zarr_format=3)
        for group, attrs in plan.group_attrs.items():
            target = root.require_group(group) if group else root
            target.attrs.update(store_attrs(attrs))
        reader = _reader(access)
        for path, array in plan.arrays.items():
            _write_array(session.store, root, array, layouts[path], checksums, reader)
        snapshot = session.commit(message, metadata=metadata)
    except BaseException:
        if created:
            access.remove_repository(store_url)
        raise
    log.info("%s: committed snapshot %s", store_url, snapshot)
    return snapshot, True


def _reader(access: Access) -> Callable[[Variable, tuple[slice, ...]], np.ndarray]:
    return lambda var, region: read_region(var, region, access)


def _layout(array: ArrayPlan) -> dict[str, Any]:
    """dtype and codecs of the store's array: the files' own where the store references
    them, Zarr's defaults where its chunks are all written by the commit."""
    if array.data is not None:
        dtype = array.data.dtype
        return {"dtype": dtype, "filters": None, "serializer": "auto", "compressors": "auto"}
    template = array.template
    dtype = template.np_dtype
    if not template.referenceable:
        return {"dtype": dtype, "filters": None, "serializer": "auto", "compressors": "auto"}
    filters, serializer, compressors = zarr_pipeline(dtype, template.filters, template.compressor)
    return {
        "dtype": dtype,
        "filters": filters,
        "serializer": serializer,
        "compressors": compressors,
    }


def _write_array(store, root: zarr.Group, array: ArrayPlan, layout, checksums, reader) -> None:
    template = array.template
    dtype = layout["dtype"]
    attrs = store_attrs(template.attrs)
    fill = template.attrs.get("_FillValue")
    if fill is not None:
        attrs["_FillValue"] = FillValueCoder.encode(fill, dtype) if dtype.kind in "fc" else fill
    parent = root.require_group(template.group) if template.group else root
    zarray = parent.create_array(
        name=template.name,
        shape=array.shape,
        chunks=array.chunks,
        fill_value=_zarr_fill(fill if fill is not None else template.storage_fill, dtype),
        dimension_names=template.dims,
        attributes=attrs,
        **layout,
    )
    if array.data is not None:
        zarray[...] = array.data
        return
    _set_references(store, template.path, array.refs, checksums)
    for lo, hi in array.copy_slabs():
        zarray[lo:hi] = _slab(array, lo, hi, dtype, reader)


def _set_references(store, path: str, refs, checksums) -> None:
    specs = [
        icechunk.VirtualChunkSpec(
            index=list(index),
            location=url,
            offset=offset,
            length=length,
            **_checksum(url, checksums),
        )
        for index, (url, offset, length) in refs.items()
    ]
    if not specs:
        return
    refused = store.set_virtual_refs(path, specs, validate_containers=True)
    if refused:
        index = tuple(refused[0])
        url = refs[index][0]
        raise CommitError(
            f"Icechunk refused {len(refused)} reference(s) of {path!r}, e.g. chunk {index} "
            f"in {url}: no virtual chunk container of the repository matches that URL"
        )


def _checksum(url: str, checksums: dict[str, str | datetime]) -> dict[str, Any]:
    value = checksums.get(url)
    if isinstance(value, str):
        return {"etag_checksum": value}
    return {"last_updated_at_checksum": value}


def attribute_types(plan: Plan) -> dict[str, dict[str, Any]]:
    """What JSON attributes lose, for readers that restore it (``open_store_dataset``): the
    numpy type of each numeric attribute, and which floats were NaN or infinite."""
    found: dict[str, dict[str, Any]] = {"arrays": {}, "groups": {}}
    nodes = [
        ("groups", g, a, plan.group_attr_types.get(g, {})) for g, a in plan.group_attrs.items()
    ]
    nodes += [
        ("arrays", p, a.template.attrs, a.template.attr_types) for p, a in plan.arrays.items()
    ]
    for kind, path, attrs, types in nodes:
        entry = {
            "types": {k: t for k, t in types.items() if k in attrs and k != "_FillValue"},
            "nonfinite": nonfinite_attributes(attrs),
        }
        if entry["types"] or entry["nonfinite"]:
            found[kind][path] = entry
    return found


def store_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes as Icechunk can hold them: its metadata is strict JSON, which has no NaN or
    Infinity, so such floats are written as the strings "NaN", "Infinity", "-Infinity" (the
    spelling Zarr uses for fill values); ``nonfinite_attributes`` lists them."""
    return {k: _finite(v) for k, v in attrs.items() if k != "_FillValue"}


def nonfinite_attributes(attrs: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in attrs.items() if k != "_FillValue" and _finite(v) != v)


def _finite(value: Any) -> Any:
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


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
