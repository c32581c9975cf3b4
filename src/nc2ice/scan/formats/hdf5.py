"""HDF5 / netCDF4 files → a Manifest.

This walks the file with h5py and maps filters to numcodecs with VirtualiZarr's own mapping
(``nc2ice.model.codecs``).  It does not call ``HDFParser`` itself because that gives no
per-variable control: a variable-length string variable crashes the whole file, a
compact-layout dataset comes back with no chunks (it would read as fill values), and
``drop_variables`` does not reach into groups.  Here each dataset is decided on its own:
referenced (and loaded too when small), loaded only (not referenceable), or left out with a
note saying why.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import h5py
import hdf5plugin  # noqa: F401 - registers the HDF5 filters (LZ4, Zstd, ...) h5py reads with
import numpy as np

from nc2ice.model.chunks import Fetch, assemble, whole
from nc2ice.model.codecs import undecodable
from nc2ice.model.manifest import Manifest, Variable, dtype_str
from nc2ice.model.refs import ChunkRefs
from nc2ice.scan.formats import Ranges, run_steps
from nc2ice.scan.formats.filters import hdf5_codecs
from nc2ice.scan.formats.policy import AWKWARD_CAP, bounds_names, should_load

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
_ZARR_KEYS = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}  # not node names
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
    """A file's manifest (the reader fetches what it needs as it goes)."""
    return run_steps(hdf5_steps(url, fileobj, inline_limit))


def hdf5_steps(url: str, fileobj: Any, inline_limit: int) -> Generator[Ranges, None, Manifest]:
    """Scan in two steps: the layout, from the bytes at hand (usually the file's head), then
    the values to load.  Values that can be referenced are decoded from their chunks with
    the variable's own codecs after the file is closed; the scan yields their byte ranges
    first, so a batch scan fetches them in one request while it parses other files."""
    manifest = Manifest(url=url, variables={}, group_attrs={})
    with h5py.File(fileobj, mode="r") as f:
        decode = _layout(f, url, inline_limit, manifest)
    ranges = [(offset, length) for var in decode for _, offset, length in var.refs.values()]
    if ranges:
        yield ranges
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(open(fileobj, "rb")) if isinstance(fileobj, str) else fileobj
        for var in decode:
            var.data = assemble(var, whole(var), byte_source(source))
    return manifest


def _layout(f: h5py.File, url: str, inline_limit: int, manifest: Manifest) -> list[Variable]:
    """Fill the manifest from the file's layout; return the variables whose values are to
    be decoded from their chunks.  (A function of its own so that no object of the file
    outlives it: h5py closes a file with objects still open much more slowly.)"""
    tree = walk(f)
    datasets: dict[str, h5py.Dataset] = {}
    for group in tree:
        if _ZARR_KEYS.intersection(group.path.split("/")):
            manifest.notes.append(f"left out group {group.path!r}: Zarr keeps its name")
            continue
        manifest.notes.extend(f"left out {path!r}: {why}" for path, why in group.unfollowed)
        where = f"group {group.path!r}" if group.path else "the root group"
        attrs, types = attributes(group.group, manifest.notes, where)
        manifest.group_attrs[group.path], manifest.group_attr_types[group.path] = attrs, types
        datasets.update(group.variables())
    dims = dimension_names(tree, f)
    for path, ds in list(datasets.items()):
        why = _why_not_storable(ds)
        if why is not None:
            manifest.notes.append(f"left out {path!r}: {why}")
            del datasets[path]
    shapes = netcdf_shapes(datasets, dims.scales)
    described = {
        p: _describe(ds, p, dims[p], shapes[p], manifest.notes) for p, ds in datasets.items()
    }
    bounds = bounds_names(described.values())
    decode = []
    for path, ds in datasets.items():
        var, load, reason = _variable(
            ds, described[path], url, inline_limit, bounds, manifest.notes
        )
        if var is None:
            continue
        manifest.variables[path] = var
        if load and var.referenceable:
            decode.append(var)
        elif load and not _load_into(var, ds, reason, manifest.notes):  # through h5py, now
            del manifest.variables[path]
    return decode


def byte_source(fileobj: Any) -> Fetch:
    """Reads of (offsets, lengths) from an open file or file-like object."""

    def fetch(_: str, offsets: list[int], lengths: list[int]) -> list[bytes]:
        out = []
        for offset, length in zip(offsets, lengths, strict=True):
            fileobj.seek(offset)
            out.append(fileobj.read(length))
        return out

    return fetch


@dataclass
class _Group:
    """One group of the file: its path and its datasets in file order (the order netCDF-C
    and h5netcdf name unnamed dimensions in), each marked if it is a dimension scale."""

    path: str
    group: h5py.Group
    datasets: list[tuple[str, h5py.Dataset, bool]]
    unfollowed: list[tuple[str, str]] = field(default_factory=list)  # (path, why) of links

    def variables(self) -> dict[str, h5py.Dataset]:
        return {
            _join(self.path, key): ds
            for key, ds, scale in self.datasets
            if not (scale and _is_pure_dimension(ds))
        }


def walk(f: h5py.File) -> list[_Group]:
    """Every group, root first, then each subgroup depth first, in one pass over the file."""
    out: list[_Group] = []

    home = f.id.fileno

    def visit(group: h5py.Group, path: str) -> None:
        datasets, children, unfollowed = [], [], []
        for key, obj in group.items():
            if obj is None:
                unfollowed.append((_join(path, key), "it is a link to nothing"))
            elif obj.id.fileno != home:  # the byte offsets of another file: wrong here
                why = "it is an external link into another file, which is not followed"
                unfollowed.append((_join(path, key), why))
            elif isinstance(obj, h5py.Group):
                children.append((key, obj))
            elif isinstance(obj, h5py.Dataset):
                datasets.append((key, obj, h5py.h5ds.is_scale(obj.id)))
        out.append(_Group(path, group, datasets, unfollowed))
        for key, child in children:
            visit(child, _join(path, key))

    visit(f, "")
    return out


def _join(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix else key


def _is_pure_dimension(ds: h5py.Dataset) -> bool:
    name = ds.attrs.get("NAME", b"")
    return isinstance(name, bytes) and name.decode(errors="replace").startswith(_PURE_DIMENSION)


def _describe(
    ds: h5py.Dataset, path: str, dims: tuple[str, ...], shape: tuple[int, ...], notes: list[str]
) -> Variable:
    attrs, types = attributes(ds, notes, repr(path))
    _check_fill(attrs, ds.dtype, path, notes)
    return Variable(
        path=path,
        dims=dims,
        shape=shape,
        # Zarr wants chunks of at least one element: an empty dataset has a zero-length axis
        chunks=tuple(max(1, n) for n in ds.chunks or ds.shape),
        dtype=ds.dtype.str,
        attrs=attrs,
        attr_types=types,
    )


def _variable(
    ds: h5py.Dataset, var: Variable, url: str, limit: int, bounds: set[str], notes: list[str]
) -> tuple[Variable | None, bool, str | None]:
    """The variable as referenced, whether to load its values too, and why it cannot be
    referenced (None if it can)."""
    path = var.path
    reason = _why_not_referenceable(ds) or _why_not_padded(ds, var)
    if var.shape != ds.shape and ds.dtype.kind in "biuf" and _fill_differs(ds, var):
        var.storage_fill = ds.fillvalue.item()  # what netCDF readers pad the steps with
    if reason is None:
        var.filters, var.compressor = hdf5_codecs(ds)
        var.refs, masked = _chunk_refs(ds, url, var.chunk_grid())
        var.virtual = True
        var.undecodable = _undecodable(ds, var) or _skipped_filters(masked, len(var.refs))
        if len(var.refs) < math.prod(var.chunk_grid()) and _fill_differs(ds, var):
            var.storage_fill = ds.fillvalue.item()
            notes.append(
                f"{path!r} has chunks the file never wrote; they read as {var.storage_fill!r}"
                + _no_fill(ds)
            )
        small = should_load(var, bounds, limit)
        if var.undecodable:
            how = "loaded into the manifest" if small else "to be copied, read through h5py"
            notes.append(f"{path!r} {how}: {var.undecodable}")
        return var, small, None
    if var.nbytes > AWKWARD_CAP:
        notes.append(f"left out {path!r}: {reason}, and at {var.nbytes} bytes too large to load")
        return None, False, reason
    return var, True, reason


def _load_into(var: Variable, ds: h5py.Dataset, reason: str | None, notes: list[str]) -> bool:
    """Load a variable's values; False if they cannot be stored (left out, with a note)."""
    try:
        var.data = _padded(_load(ds), var)
    except TypeError as exc:  # a compound type Zarr cannot hold (vlen members, nesting)
        notes.append(f"left out {var.path!r}: {reason or 'its type'} cannot be stored ({exc})")
        return False
    if not var.virtual:
        var.dtype = dtype_str(var.data.dtype)
    if reason is not None:
        notes.append(f"loaded {var.path!r} into the manifest: {reason}")
    return True


def _why_not_storable(ds: h5py.Dataset) -> str | None:
    """Why a dataset can be neither referenced nor copied faithfully, or None."""
    reserved = _ZARR_KEYS.intersection(ds.name.split("/"))
    if reserved:
        return f"its path holds {reserved.pop()!r}, a name Zarr keeps for its own metadata"
    if ds.shape is None:
        return "it holds no values (an HDF5 null dataspace)"
    plist = ds.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        return "its data lives in other files (an HDF5 virtual dataset), which are not followed"
    if plist.get_external_count():
        return "its data lives in other files (HDF5 external storage), which are not followed"
    dtype = ds.dtype
    if dtype.kind in "biu" or (dtype.kind == "f" and dtype.itemsize <= 8):
        return None  # plain numbers: the usual
    if h5py.check_ref_dtype(dtype) is not None:
        return "its values are HDF5 object references, which mean nothing outside the file"
    base = h5py.check_vlen_dtype(dtype)
    if h5py.check_string_dtype(dtype) is None and base is not None:
        return f"its type (variable-length sequences of {base}) has no Zarr equivalent"
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return f"its elements are arrays (of {shape} {base}), which netCDF has no type for"
    if dtype.kind == "V" and not dtype.names:
        return f"its type (opaque, {dtype.itemsize} bytes) is not read by netCDF readers"
    if (dtype.kind == "f" and dtype.itemsize > 8) or (dtype.kind == "c" and dtype.itemsize > 16):
        return f"its type ({dtype.name}, extended precision) has no Zarr equivalent"
    return None


def _why_not_padded(ds: h5py.Dataset, var: Variable) -> str | None:
    """Why a dataset shorter than its unlimited dimension cannot be referenced: its last
    chunk runs past its end, where the file's bytes are not the fill value readers give."""
    for axis, (n, stored) in enumerate(zip(ds.shape, var.shape, strict=True)):
        if n < stored and n % var.chunks[axis]:
            return (
                f"it is shorter than its unlimited dimension {var.dims[axis]!r} ({n} of "
                f"{stored}) and its last chunk runs past its end"
            )
    return None


def _padded(values: np.ndarray, var: Variable) -> np.ndarray:
    """Values of a dataset shorter than its unlimited dimension, padded as netCDF readers
    pad them (with the fill value)."""
    if values.shape == var.shape:
        return values
    fill = var.fill if values.dtype.kind not in "SUO" else ""
    out = np.full(var.shape, fill, dtype=values.dtype)
    out[tuple(slice(0, n) for n in values.shape)] = values
    return out


def _check_fill(attrs: dict[str, Any], dtype: np.dtype, path: str, notes: list[str]) -> None:
    """A _FillValue that is one number, for numbers (netCDF-C writes no other): several
    values become missing_value (readers mask them all, either way); text is left out."""
    fill = attrs.get("_FillValue")
    if fill is None or dtype.kind not in "biufc":
        return
    values = np.asarray(fill)
    if values.dtype.kind not in "biuf":
        del attrs["_FillValue"]
        notes.append(f"left out the _FillValue {fill!r} of {path!r}: it is not a number")
    elif values.size != 1:
        del attrs["_FillValue"]
        attrs.setdefault("missing_value", fill)
        notes.append(f"{path!r} has {values.size} fill values {fill!r}: kept as missing_value")


def _why_not_referenceable(ds: h5py.Dataset) -> str | None:
    if ds.dtype.kind not in "biuf":
        kind = "compound" if ds.dtype.names else str(ds.dtype)
        return f"its type ({kind}) cannot be referenced"
    if ds.id.get_create_plist().get_layout() == h5py.h5d.COMPACT:
        return "its data is stored inside the HDF5 header (compact layout)"
    return None


def _skipped_filters(masked: int, chunks: int) -> str:
    """Why chunks stored without some of their filters cannot be referenced: HDF5 skips an
    optional filter (Blosc, Zstd, ...) where it does not shrink a chunk, and writers may store
    chunks directly, so such chunks differ in encoding from the others."""
    if not masked:
        return ""
    return (
        f"{masked} of its {chunks} chunks were stored without their filters (HDF5 filter "
        "mask), which Zarr codecs cannot tell apart"
    )


def _no_fill(ds: h5py.Dataset) -> str:
    if ds.id.get_create_plist().get_fill_time() != h5py.h5d.FILL_TIME_NEVER:
        return ""
    return " (the file was written without fill values: netCDF-C reads them as undefined)"


def _fill_differs(ds: h5py.Dataset, var: Variable) -> bool:
    """Whether the chunks the file never wrote read as something else than _FillValue (there
    is none, or a writer other than netCDF-C set HDF5's fill value to another value)."""
    if "_FillValue" not in var.attrs:
        return True
    try:
        cf = np.asarray(var.attrs["_FillValue"]).astype(ds.dtype)
    except (TypeError, ValueError, OverflowError):
        return True
    return not np.array_equal(cf, np.asarray(ds.fillvalue), equal_nan=ds.dtype.kind == "f")


def _undecodable(ds: h5py.Dataset, var: Variable) -> str:
    if not undecodable(var.filters, var.compressor):
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
    if string_info is not None and string_info.length == 1:
        return np.asarray(ds[()], dtype="S1")  # netCDF's NC_CHAR: readers join the last axis
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
    # little-endian fields: Zarr writes a record's bytes as they are, whatever their order
    packed = np.dtype([(name, fields[name][0].newbyteorder("<")) for name in values.dtype.names])
    return values.astype(packed)


def _chunk_refs(ds: h5py.Dataset, url: str, grid: tuple[int, ...]) -> tuple[ChunkRefs, int]:
    """The dataset's chunk references, and how many of its chunks skipped a filter."""
    refs = ChunkRefs.empty(grid, [url])
    dsid = ds.id
    if ds.chunks is None:
        offset = dsid.get_offset()
        if offset is not None and dsid.get_storage_size():  # else reads as the fill value
            refs.offsets[...], refs.lengths[...] = offset, dsid.get_storage_size()
        return refs, 0
    found: list[tuple[int, ...]] = []  # flat rows: position..., byte offset, size, mask

    def add(info: Any) -> None:
        found.append((*info.chunk_offset, info.byte_offset, info.size, info.filter_mask))

    if callable(getattr(dsid, "chunk_iter", None)):
        dsid.chunk_iter(add)
    else:
        for i in range(dsid.get_num_chunks()):
            add(dsid.get_chunk_info(i))
    if not found:
        return refs, 0
    rows, n = np.array(found, dtype=np.int64), ds.ndim  # one table: faster than columns
    where = tuple((rows[:, :n] // np.array(ds.chunks)).T)
    refs.offsets[where], refs.lengths[where] = rows[:, n], rows[:, n + 1]
    return refs, int(np.count_nonzero(rows[:, n + 2]))


# -- dimension names --------------------------------------------------------------------------


class Dimensions(dict):
    """Each dataset's dimension names; ``scales`` holds each axis's dimension scale (its
    path in the file), where one is attached."""

    def __init__(self) -> None:
        super().__init__()
        self.scales: dict[str, tuple[str | None, ...]] = {}


def dimension_names(tree: list[_Group], f: h5py.File) -> Dimensions:
    """The dimension names of every dataset, as netCDF-C and h5netcdf name them.

    Axes with a dimension scale take its name.  Datasets without scales get "phony"
    dimensions: per group, one per distinct size (and as many of a size as one dataset
    needs), numbered across the file after the highest netCDF dimension id, reusing a real
    dimension of the same size in that group first.  This mirrors h5netcdf's
    ``phony_dims="sort"``, which mirrors netCDF-C.
    """
    out = Dimensions()
    counter = _PhonyCounter(tree)
    for group in tree:
        _name_group(group, counter, out)
    return out


def netcdf_shapes(
    datasets: dict[str, h5py.Dataset], scales: dict[str, tuple[str | None, ...]]
) -> dict[str, tuple[int, ...]]:
    """Each dataset's shape as netCDF readers give it: along an unlimited dimension, the
    longest of the datasets that share it (shorter ones read as the fill value there)."""
    unlimited: dict[str, int] = {}
    growable = []
    for path, ds in datasets.items():
        if None not in (ds.maxshape or ()):
            continue
        growable.append(path)
        for axis, scale in enumerate(scales.get(path, ())):
            if scale is not None and ds.maxshape[axis] is None:
                unlimited[scale] = max(unlimited.get(scale, 0), ds.shape[axis])
    shapes = {path: ds.shape for path, ds in datasets.items()}
    for path in growable:
        ds = datasets[path]
        axes = zip(ds.shape, ds.maxshape, scales.get(path) or (None,) * ds.ndim, strict=True)
        shapes[path] = tuple(
            max(n, unlimited.get(s, 0)) if s and most is None else n for n, most, s in axes
        )
    return shapes


class _PhonyCounter:
    """Numbers phony dimensions after the file's highest netCDF dimension id, looked up
    only when a file has unnamed dimensions."""

    def __init__(self, tree: list[_Group]):
        self.tree = tree
        self.numbers: itertools.count | None = None

    def __next__(self) -> int:
        if self.numbers is None:
            ids = [
                int(ds.attrs.get("_Netcdf4Dimid", -1))
                for group in self.tree
                for _, ds, scale in group.datasets
                if scale
            ]
            self.numbers = itertools.count(max(ids, default=-1) + 1)
        return next(self.numbers)


def _name_group(group: _Group, counter: _PhonyCounter, out: Dimensions) -> None:
    own: list[tuple[str, int | None, int]] = []  # (name, size if limited, current size)
    unlabeled: list[tuple[str, h5py.Dataset]] = []
    needed: Counter[int] = Counter()
    for key, obj, scale in group.datasets:
        path = _join(group.path, key)
        if scale:
            limited = None if obj.maxshape and obj.maxshape[0] is None else obj.shape[0]
            own.append((key, limited, obj.shape[0] if obj.shape else 0))
        found = _scales(obj, scale)
        names = [s.rpartition("/")[2] if s else None for s in found]
        out.scales[path] = tuple(found)
        if obj.ndim and not scale and all(n is None for n in names):
            unlabeled.append((path, obj))
            needed |= Counter(obj.shape)
        else:
            out[path] = tuple(n or f"phony_dim_{axis}" for axis, n in enumerate(names))
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


def _scales(ds: h5py.Dataset, scale: bool) -> list[str | None]:
    """Each axis's dimension scale, by its path (netCDF-C takes the last scale attached): the
    dataset itself for a scale, None for an axis without one."""
    paths: list[str | None] = []
    for axis in range(ds.ndim):
        found: list[bytes] = []
        if h5py.h5ds.get_num_scales(ds.id, axis):
            h5py.h5ds.iterate(
                ds.id, axis, lambda sid, found=found: found.append(h5py.h5i.get_name(sid))
            )
        if found:
            paths.append(found[-1].decode())
        else:
            paths.append(ds.name if scale else None)
    return paths


# -- attributes -------------------------------------------------------------------------------


def attributes(
    obj: h5py.Group | h5py.Dataset, notes: list[str] | None = None, where: str = ""
) -> tuple[dict[str, Any], dict[str, str]]:
    """The netCDF attributes as JSON-friendly values, and the numpy type of each numeric one
    (JSON keeps numbers, not their width: a float32 ``scale_factor`` matters to readers).
    Attributes that cannot be kept are left out, each with a note naming it and why."""
    values, types = {}, {}
    for key, name in _attribute_names(obj.id):
        if key in _HIDDEN_ATTRS:
            continue
        try:
            value = _read_attribute(obj.id, name)
            why = why_not_kept(value)
        except (OSError, TypeError, ValueError) as exc:
            why = f"h5py cannot read it ({str(exc).strip() or type(exc).__name__})"
        if why:
            if notes is not None:
                notes.append(f"left out attribute {key!r} of {where}: {why}")
            continue
        values[key] = plain(value)
        if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biuf":
            types[key] = value.dtype.name
    return values, types


def why_not_kept(value: Any) -> str:
    """Why an attribute's value has no JSON form a netCDF reader would recognise, or "".
    The value as h5py reads it, or as h5netcdf gives it (which validation reads)."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None and dtype.kind not in "OV":  # numbers and text: the usual, kept
        return ""
    if isinstance(value, h5py.Reference | h5py.RegionReference):
        return "HDF5 object references mean nothing outside the file"
    if dtype is None or isinstance(value, h5py.Empty):
        return ""
    items = list(value.flat) if dtype.kind == "O" else []
    if h5py.check_ref_dtype(dtype) is not None or (
        items and all(isinstance(v, h5py.Reference) for v in items)
    ):
        return "HDF5 object references mean nothing outside the file"
    vlen = h5py.check_string_dtype(dtype) is None and h5py.check_vlen_dtype(dtype) is not None
    if vlen or any(isinstance(v, np.ndarray) for v in items):
        return "variable-length sequences have no JSON equivalent"
    if dtype.kind == "V":
        kind = "a compound value" if dtype.names else "an opaque value"
        return f"{kind} has no JSON equivalent"
    return ""


def _attribute_names(oid: Any) -> list[tuple[str, bytes]]:
    """Names in creation order where the file tracks it (as netCDF-C lists them), else by
    name, as h5py's ``attrs`` gives them."""
    plist = oid.get_create_plist()
    tracked = plist.get_attr_creation_order() & h5py.h5p.CRT_ORDER_TRACKED
    index = h5py.h5.INDEX_CRT_ORDER if tracked else h5py.h5.INDEX_NAME
    names: list[bytes] = []
    h5py.h5a.iterate(oid, lambda name, *_: names.append(name), index_type=index)
    return [(name.decode("utf-8", "surrogateescape"), name) for name in names]


def _read_attribute(oid: Any, name: bytes) -> Any:
    """An attribute's value as h5py's ``attrs[name]`` reads it, through the low-level API
    (the high-level one costs about 15% more, and files carry dozens of attributes)."""
    attr = h5py.h5a.open(oid, name)
    if attr.shape is None:  # an empty dataspace
        return h5py.Empty(attr.dtype)
    dtype, shape = attr.dtype, attr.shape
    memory = h5py.h5t.py_create(dtype)
    if dtype.subdtype is not None:  # numpy has no top-level array type: widen the shape
        dtype, extra = dtype.subdtype
        shape = shape + extra
    values = np.zeros(shape, dtype=dtype)
    attr.read(values, mtype=memory)
    return values[()] if values.ndim == 0 else values


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
