"""HDF5 / netCDF4 files → a Manifest.

This walks the file with h5py and maps filters to numcodecs with VirtualiZarr's own mapping
(``codecs_from_dataset``).  It does not call ``HDFParser`` itself because that gives no
per-variable control: a variable-length string variable crashes the whole file, a
compact-layout dataset comes back with no chunks (it would read as fill values), and
``drop_variables`` does not reach into groups.  Here each dataset is decided on its own:
referenced, loaded (small or not referenceable) or left out with a note saying why.
"""

from __future__ import annotations

import math
from typing import Any

import h5py
import numpy as np
from virtualizarr.parsers.hdf.filters import codecs_from_dataset

from nc2ice.formats.policy import AWKWARD_CAP, bounds_names, should_load
from nc2ice.manifest import Manifest, Variable

_HIDDEN_ATTRS = {
    "REFERENCE_LIST",
    "CLASS",
    "DIMENSION_LIST",
    "NAME",
    "_Netcdf4Dimid",
    "_Netcdf4Coordinates",
    "_nc3_strict",
    "_NCProperties",
    "_SuperblockVersion",
    "_IsNetcdf4",
}
_PURE_DIMENSION = "This is a netCDF dimension but not a netCDF variable"


def scan_hdf5(url: str, fileobj: Any, inline_limit: int) -> Manifest:
    manifest = Manifest(url=url, variables={}, group_attrs={})
    with h5py.File(fileobj, mode="r") as f:
        datasets: dict[str, h5py.Dataset] = {}
        _walk(f, "", manifest, datasets)
        bounds = bounds_names(_describe(ds, p) for p, ds in datasets.items())
        for path, ds in datasets.items():
            var = _variable(ds, path, url, inline_limit, bounds, manifest.notes)
            if var is not None:
                manifest.variables[path] = var
    return manifest


def _walk(group: h5py.Group, prefix: str, manifest: Manifest, found: dict) -> None:
    manifest.group_attrs[prefix] = attributes(group)
    for key, obj in group.items():
        path = f"{prefix}/{key}" if prefix else key
        if isinstance(obj, h5py.Group):
            _walk(obj, path, manifest, found)
        elif isinstance(obj, h5py.Dataset) and not _is_pure_dimension(obj):
            found[path] = obj


def _is_pure_dimension(ds: h5py.Dataset) -> bool:
    name = ds.attrs.get("NAME", b"")
    return isinstance(name, bytes) and name.decode(errors="replace").startswith(_PURE_DIMENSION)


def _describe(ds: h5py.Dataset, path: str) -> Variable:
    return Variable(
        path=path,
        dims=_dims(ds),
        shape=tuple(ds.shape),
        chunks=tuple(ds.chunks or ds.shape),
        dtype=ds.dtype.str,
        attrs=attributes(ds),
    )


def _variable(
    ds: h5py.Dataset, path: str, url: str, limit: int, bounds: set[str], notes: list[str]
) -> Variable | None:
    var = _describe(ds, path)
    reason = _why_not_referenceable(ds)
    if reason is None and not should_load(var, bounds, limit):
        codecs = [c.get_config() for c in codecs_from_dataset(ds)]
        var.filters = codecs[:-1] or None
        var.compressor = codecs[-1] if codecs else None
        var.refs = _chunk_refs(ds, url)
        if len(var.refs) < math.prod(var.chunk_grid()) and "_FillValue" not in var.attrs:
            var.storage_fill = ds.fillvalue.item()
            notes.append(
                f"{path!r} has chunks the file never wrote; they read as {var.storage_fill!r}"
            )
        return var
    if reason is not None and var.nbytes > AWKWARD_CAP:
        notes.append(f"left out {path!r}: {reason}, and at {var.nbytes} bytes too large to load")
        return None
    var.data = _load(ds)
    var.dtype = var.data.dtype.str
    if reason is not None:
        notes.append(f"loaded {path!r} into the manifest: {reason}")
    return var


def _why_not_referenceable(ds: h5py.Dataset) -> str | None:
    if ds.dtype.kind not in "biuf":
        return f"its type {ds.dtype} cannot be referenced"
    if ds.id.get_create_plist().get_layout() == h5py.h5d.COMPACT:
        return "its data is stored inside the HDF5 header (compact layout)"
    try:
        codecs_from_dataset(ds)
    except Exception as exc:
        return f"its HDF5 filter has no Zarr codec ({exc})"
    return None


def _load(ds: h5py.Dataset) -> np.ndarray:
    string_info = h5py.check_string_dtype(ds.dtype)
    if string_info is not None:
        values = ds.asstr()[()]
        return np.asarray(values, dtype=str)
    values = np.asarray(ds[()])
    if values.dtype.kind == "O":
        return np.asarray(values.tolist(), dtype=str)
    return values


def _chunk_refs(ds: h5py.Dataset, url: str) -> dict[tuple[int, ...], tuple[str, int, int]]:
    dsid = ds.id
    if ds.chunks is None:
        offset = dsid.get_offset()
        if offset is None:
            return {}  # never written: reads as the fill value
        return {tuple(0 for _ in ds.shape): (url, int(offset), int(dsid.get_storage_size()))}
    refs = {}

    def add(info: Any) -> None:
        index = tuple(o // c for o, c in zip(info.chunk_offset, ds.chunks, strict=True))
        refs[index] = (url, int(info.byte_offset), int(info.size))

    if callable(getattr(dsid, "chunk_iter", None)):
        dsid.chunk_iter(add)
    else:
        for i in range(dsid.get_num_chunks()):
            add(dsid.get_chunk_info(i))
    return refs


def _dims(ds: h5py.Dataset) -> tuple[str, ...]:
    dims = []
    for n, dim in enumerate(ds.dims):
        if len(dim) >= 1:
            dims.append(dim[0].name.rpartition("/")[2])
        elif h5py.h5ds.is_scale(ds.id):
            dims.append(ds.name.rpartition("/")[2])
        else:
            dims.append(f"phony_dim_{n}")
    return tuple(dims)


def attributes(obj: h5py.Group | h5py.Dataset) -> dict[str, Any]:
    out = {}
    for key in obj.attrs:
        if key in _HIDDEN_ATTRS:
            continue
        try:
            value = obj.attrs[key]
        except (OSError, TypeError):
            continue  # an attribute h5py cannot read (e.g. a reference type)
        out[key] = plain(value)
    return out


def plain(value: Any) -> Any:
    """An attribute value as JSON-friendly Python: str, int, float, bool or a list of them."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, h5py.Empty):
        return ""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            items = [plain(v) for v in value.reshape(-1)]
            return items[0] if len(items) == 1 else items
        return value.reshape(-1)[0].item() if value.size == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
