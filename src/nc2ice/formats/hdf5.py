"""HDF5 / netCDF4 files → a Manifest.

This walks the file with h5py and maps filters to numcodecs with VirtualiZarr's own mapping
(``nc2ice.codecs``).  It does not call ``HDFParser`` itself because that gives no
per-variable control: a variable-length string variable crashes the whole file, a
compact-layout dataset comes back with no chunks (it would read as fill values), and
``drop_variables`` does not reach into groups.  Here each dataset is decided on its own:
referenced (and loaded too when small), loaded only (not referenceable), or left out with a
note saying why.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

import h5py
import hdf5plugin  # noqa: F401 - registers the HDF5 filters (LZ4, Zstd, ...) h5py reads with
import numpy as np

from nc2ice.codecs import hdf5_codecs, undecodable
from nc2ice.formats.policy import AWKWARD_CAP, bounds_names, should_load
from nc2ice.manifest import Manifest, Variable, dtype_str

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
_FILTER_NAMES = {
    4: "szip",
    5: "n-bit",
    6: "scale-offset",
    307: "bzip2",
    32000: "LZF",
    32001: "Blosc",
    32004: "LZ4",
    32008: "bitshuffle",
    32015: "Zstandard",
}


def scan_hdf5(url: str, fileobj: Any, inline_limit: int) -> Manifest:
    manifest = Manifest(url=url, variables={}, group_attrs={})
    with h5py.File(fileobj, mode="r") as f:
        datasets: dict[str, h5py.Dataset] = {}
        _walk(f, "", manifest, datasets)
        dims = dimension_names(f)
        described = {p: _describe(ds, p, dims[p]) for p, ds in datasets.items()}
        bounds = bounds_names(described.values())
        for path, ds in datasets.items():
            var = _variable(ds, described[path], url, inline_limit, bounds, manifest.notes)
            if var is not None:
                manifest.variables[path] = var
    return manifest


def _walk(group: h5py.Group, prefix: str, manifest: Manifest, found: dict) -> None:
    manifest.group_attrs[prefix], manifest.group_attr_types[prefix] = attributes(group)
    for key, obj in group.items():
        path = f"{prefix}/{key}" if prefix else key
        if isinstance(obj, h5py.Group):
            _walk(obj, path, manifest, found)
        elif isinstance(obj, h5py.Dataset) and not _is_pure_dimension(obj):
            found[path] = obj


def _is_pure_dimension(ds: h5py.Dataset) -> bool:
    name = ds.attrs.get("NAME", b"")
    return isinstance(name, bytes) and name.decode(errors="replace").startswith(_PURE_DIMENSION)


def _describe(ds: h5py.Dataset, path: str, dims: tuple[str, ...]) -> Variable:
    attrs, types = attributes(ds)
    return Variable(
        path=path,
        dims=dims,
        shape=tuple(ds.shape),
        chunks=tuple(ds.chunks or ds.shape),
        dtype=ds.dtype.str,
        attrs=attrs,
        attr_types=types,
    )


def _variable(
    ds: h5py.Dataset, var: Variable, url: str, limit: int, bounds: set[str], notes: list[str]
) -> Variable | None:
    path = var.path
    reason = _why_not_referenceable(ds)
    if reason is None:
        var.filters, var.compressor = hdf5_codecs(ds)
        var.refs, var.virtual = _chunk_refs(ds, url), True
        var.undecodable = _undecodable(ds, var)
        if len(var.refs) < math.prod(var.chunk_grid()) and "_FillValue" not in var.attrs:
            var.storage_fill = ds.fillvalue.item()
            notes.append(
                f"{path!r} has chunks the file never wrote; they read as {var.storage_fill!r}"
            )
        small = should_load(var, bounds, limit)
        if var.undecodable:
            how = "loaded into the manifest" if small else "to be copied, read through h5py"
            notes.append(f"{path!r} {how}: {var.undecodable}")
        if not small:
            return var
    elif var.nbytes > AWKWARD_CAP:
        notes.append(f"left out {path!r}: {reason}, and at {var.nbytes} bytes too large to load")
        return None
    try:
        var.data = _load(ds)
    except TypeError as exc:  # a compound type Zarr cannot hold (vlen members, nesting)
        notes.append(f"left out {path!r}: {reason or 'its type'} cannot be stored ({exc})")
        return None
    if not var.virtual:
        var.dtype = dtype_str(var.data.dtype)
    if reason is not None:
        notes.append(f"loaded {path!r} into the manifest: {reason}")
    return var


def _why_not_referenceable(ds: h5py.Dataset) -> str | None:
    if ds.dtype.kind not in "biuf":
        kind = "compound" if ds.dtype.names else str(ds.dtype)
        return f"its type ({kind}) cannot be referenced"
    if ds.id.get_create_plist().get_layout() == h5py.h5d.COMPACT:
        return "its data is stored inside the HDF5 header (compact layout)"
    return None


def _undecodable(ds: h5py.Dataset, var: Variable) -> str:
    if not undecodable(var.np_dtype, var.filters, var.compressor):
        return ""
    plist = ds.id.get_create_plist()
    names = []
    for i in range(plist.get_nfilters()):
        code, _, _, name = plist.get_filter(i)
        label = _FILTER_NAMES.get(code) or name.decode(errors="replace")[:40]
        names.append(f"{label} ({code})")
    return f"Zarr readers have no codec for its HDF5 filter {', '.join(names)}"


def _load(ds: h5py.Dataset) -> np.ndarray:
    string_info = h5py.check_string_dtype(ds.dtype)
    if string_info is not None:
        values = ds.asstr()[()]
        return np.asarray(values, dtype=str)
    values = np.asarray(ds[()])
    if values.dtype.names:
        return _packed_record(values)
    if values.dtype.kind == "O":
        return np.asarray(values.tolist(), dtype=str)
    return values


def _packed_record(values: np.ndarray) -> np.ndarray:
    """A compound dataset as a packed record array of fixed-size numbers, or TypeError."""
    fields = values.dtype.fields or {}
    if any(dt.kind not in "biuf" or dt.shape for dt, *_ in fields.values()):
        raise TypeError("only records of plain numbers can be stored in Zarr")
    packed = np.dtype([(name, fields[name][0]) for name in values.dtype.names])
    return values.astype(packed)


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


# -- dimension names --------------------------------------------------------------------------


def dimension_names(f: h5py.File) -> dict[str, tuple[str, ...]]:
    """The dimension names of every dataset, as netCDF-C and h5netcdf name them.

    Axes with a dimension scale take its name.  Datasets without scales get "phony"
    dimensions: per group, one per distinct size (and as many of a size as one dataset
    needs), numbered across the file after the highest netCDF dimension id, reusing a real
    dimension of the same size in that group first.  This mirrors h5netcdf's
    ``phony_dims="sort"``, which mirrors netCDF-C.
    """
    out: dict[str, tuple[str, ...]] = {}
    _name_group(f, "", _PhonyCounter(f), out)
    return out


class _PhonyCounter:
    """Numbers phony dimensions after the file's highest netCDF dimension id, looked up
    only when a file has unnamed dimensions (it walks every dataset's attributes)."""

    def __init__(self, f: h5py.File):
        self.f = f
        self.numbers: itertools.count | None = None

    def __next__(self) -> int:
        if self.numbers is None:
            ids = [-1]

            def visit(_: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset) and obj.attrs.get("CLASS") == b"DIMENSION_SCALE":
                    ids.append(int(obj.attrs.get("_Netcdf4Dimid", -1)))

            self.f.visititems(visit)
            self.numbers = itertools.count(max(ids) + 1)
        return next(self.numbers)


def _name_group(group: h5py.Group, prefix: str, counter, out: dict) -> None:
    own: list[tuple[str, int | None, int]] = []  # (name, size if limited, current size)
    unlabeled: list[tuple[str, h5py.Dataset]] = []
    needed: Counter[int] = Counter()
    for key, obj in group.items():
        if not isinstance(obj, h5py.Dataset):
            continue
        path = f"{prefix}/{key}" if prefix else key
        if obj.attrs.get("CLASS") == b"DIMENSION_SCALE":
            limited = None if obj.maxshape and obj.maxshape[0] is None else obj.shape[0]
            own.append((key, limited, obj.shape[0] if obj.shape else 0))
        if obj.ndim and all(len(d) == 0 for d in obj.dims) and not h5py.h5ds.is_scale(obj.id):
            unlabeled.append((path, obj))
            needed |= Counter(obj.shape)
        else:
            out[path] = _scale_names(obj)
    labeled = Counter(limited for _, limited, _ in own)
    for size, count in needed.items():
        for _ in range(labeled[size], count):
            own.append((f"phony_dim_{next(counter)}", size, size))
    for path, obj in unlabeled:
        seen: Counter[int] = Counter()
        names = []
        for size in obj.shape:
            names.append([name for name, _, n in own if n == size][seen[size]])
            seen[size] += 1
        out[path] = tuple(names)
    for key, obj in group.items():
        if isinstance(obj, h5py.Group):
            _name_group(obj, f"{prefix}/{key}" if prefix else key, counter, out)


def _scale_names(ds: h5py.Dataset) -> tuple[str, ...]:
    dims = []
    for n, dim in enumerate(ds.dims):
        if len(dim) >= 1:
            dims.append(dim[-1].name.rpartition("/")[2])  # netCDF-C takes the last scale
        elif h5py.h5ds.is_scale(ds.id):
            dims.append(ds.name.rpartition("/")[2])
        else:
            dims.append(f"phony_dim_{n}")  # a mix of named and unnamed axes: netCDF-C refuses
    return tuple(dims)


# -- attributes -------------------------------------------------------------------------------


def attributes(obj: h5py.Group | h5py.Dataset) -> tuple[dict[str, Any], dict[str, str]]:
    """The netCDF attributes as JSON-friendly values, and the numpy type of each numeric one
    (JSON keeps numbers, not their width: a float32 ``scale_factor`` matters to readers)."""
    values, types = {}, {}
    for key in obj.attrs:
        if key in _HIDDEN_ATTRS:
            continue
        try:
            value = obj.attrs[key]
        except (OSError, TypeError):
            continue  # an attribute h5py cannot read (e.g. a reference type)
        values[key] = plain(value)
        if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biuf":
            types[key] = value.dtype.name
    return values, types


def plain(value: Any) -> Any:
    """An attribute value as netCDF readers give it, in JSON-friendly Python: str, int, float
    or a list of them (a one-element array becomes a scalar, as netCDF-C reads it)."""
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
