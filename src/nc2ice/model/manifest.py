"""One file's references, and their kerchunk v1 JSON form.

A manifest says, for every variable of one source file, how its chunks are encoded and where
they are (URL, offset, length), or holds the values themselves for the small variables that
were loaded while scanning (coordinates, bounds, scalars, strings).  Loaded values are written
inline (``base64:``) as one uncompressed chunk, so the file opens on its own with
``xr.open_dataset(path, engine="kerchunk")`` and loads back here without loss.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nc2ice.atomic import atomic_write_text
from nc2ice.model.refs import ChunkRefs, Ref

ChunkRef = Ref


@dataclass
class Variable:
    path: str  # "tas", or "ocean/temp" inside a netCDF4 group
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str  # numpy dtype string, byte order included: "<f4", ">i2"
    attrs: dict[str, Any]  # CF attributes, _FillValue included
    filters: list[dict[str, Any]] | None = None  # numcodecs configs, zarr v2 semantics
    compressor: dict[str, Any] | None = None
    refs: ChunkRefs = field(default_factory=dict)  # type: ignore[assignment] # a mapping is converted
    data: np.ndarray | None = None  # the raw (encoded) values, when loaded
    # Whether ``refs`` describe the data (a variable the file never wrote has none and is
    # still virtual); a variable that is only loaded (strings, compact layout) is not.
    virtual: bool = False
    # What chunks the file never wrote read as, where that is not the CF _FillValue
    # (netCDF-C's default fill, for a variable without a _FillValue attribute).
    storage_fill: Any = None
    # Why Zarr readers cannot decode the referenced chunks (an HDF5 filter without a Zarr
    # codec); such a variable is copied into the store, read through h5py.
    undecodable: str = ""
    attr_types: dict[str, str] = field(default_factory=dict)  # numpy types of numeric attrs

    def __post_init__(self) -> None:
        if not isinstance(self.refs, ChunkRefs):
            self.refs = ChunkRefs.from_mapping(self.chunk_grid(), self.refs)

    def no_refs(self) -> ChunkRefs:
        return ChunkRefs.empty(self.chunk_grid())

    @property
    def fill(self) -> Any:
        """The raw value of a missing chunk's elements: HDF5's fill value where the scan found
        it differs from _FillValue (or there is none), else _FillValue."""
        value = self.storage_fill
        if value is None:
            value = self.attrs.get("_FillValue")
        return 0 if value is None else value

    @property
    def loaded(self) -> bool:
        return self.data is not None

    @property
    def referenceable(self) -> bool:
        """Whether a store can point at this file's chunks instead of copying them."""
        return self.virtual and not self.undecodable

    @property
    def group(self) -> str:
        return self.path.rpartition("/")[0]

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def uncompressed(self) -> bool:
        return not self.filters and self.compressor is None

    @property
    def np_dtype(self) -> np.dtype:
        return as_dtype(self.dtype)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.np_dtype.itemsize

    def chunk_grid(self) -> tuple[int, ...]:
        return tuple(math.ceil(s / c) for s, c in zip(self.shape, self.chunks, strict=True))


def dtype_str(dtype: np.dtype) -> str:
    """A dtype as the manifest spells it: ``.str``, or its description for records."""
    return repr(dtype.descr) if dtype.names else dtype.str


def as_dtype(spec: str | list) -> np.dtype:
    """The numpy dtype of a manifest's dtype string, or of Zarr v2's list form for records."""
    if isinstance(spec, list):
        return np.dtype([tuple(field) for field in spec])
    return np.dtype(ast.literal_eval(spec)) if spec.startswith("[") else np.dtype(spec)


@dataclass
class Manifest:
    url: str
    variables: dict[str, Variable]
    group_attrs: dict[str, dict[str, Any]]  # "" is the root group
    notes: list[str] = field(default_factory=list)  # what the scan loaded or left out, and why
    group_attr_types: dict[str, dict[str, str]] = field(default_factory=dict)
    # The version of the file that was scanned (size, ETag, Last-Modified) and how it was
    # scanned (settings, requests, bytes): a rerun reuses a manifest whose file is unchanged.
    identity: dict[str, Any] = field(default_factory=dict)
    scan: dict[str, Any] = field(default_factory=dict)

    @property
    def references(self) -> int:
        return sum(len(v.refs) for v in self.variables.values())


# -- writing ---------------------------------------------------------------------------------


def to_kerchunk(manifest: Manifest) -> dict[str, Any]:
    refs: dict[str, Any] = {}
    for group, attrs in manifest.group_attrs.items():
        prefix = f"{group}/" if group else ""
        refs[f"{prefix}.zgroup"] = json.dumps({"zarr_format": 2})
        refs[f"{prefix}.zattrs"] = dumps_attrs(attrs)
    for var in manifest.variables.values():
        refs.update(_variable_refs(var, manifest.url))
    meta: dict[str, Any] = {
        "source": manifest.url,
        "notes": manifest.notes,
        "identity": manifest.identity,
        "scan": manifest.scan,
    }
    variables = manifest.variables.values()
    sections = {
        # kerchunk readers ignore this section; these load back here
        "storage_fill": {
            v.path: _json_fill(v.storage_fill) for v in variables if v.storage_fill is not None
        },
        "values": {v.path: _inline(v) for v in variables if v.virtual and v.loaded},
        "undecodable": {v.path: v.undecodable for v in variables if v.undecodable},
        "attr_types": {v.path: v.attr_types for v in variables if v.attr_types},
        "group_attr_types": {g: t for g, t in manifest.group_attr_types.items() if t},
    }
    meta.update({k: v for k, v in sections.items() if v})
    # kerchunk's templates: the file's URL once, not in every reference
    return {"version": 1, "templates": {"u": manifest.url}, "refs": refs, "nc2ice": meta}


def _variable_refs(var: Variable, url: str) -> dict[str, Any]:
    """A virtual variable as its references (kerchunk readers follow them); a variable that
    was only loaded as one inline chunk."""
    attrs = dict(var.attrs)
    fill = attrs.pop("_FillValue", None)
    attrs["_ARRAY_DIMENSIONS"] = list(var.dims)
    inline = not var.virtual
    zarray = {
        "zarr_format": 2,
        "shape": list(var.shape),
        "chunks": list(var.shape if inline else var.chunks),
        "dtype": var.np_dtype.descr if var.np_dtype.names else var.np_dtype.str,
        "fill_value": _json_fill(fill),
        "order": "C",
        "filters": None if inline else var.filters,
        "compressor": None if inline else var.compressor,
    }
    out: dict[str, Any] = {
        f"{var.path}/.zarray": _dumps(zarray),
        f"{var.path}/.zattrs": dumps_attrs(attrs),
    }
    if inline:
        key = ".".join("0" for _ in var.shape) or "0"
        out[f"{var.path}/{key}"] = _inline(var)
    else:
        for index, (where, offset, length) in var.refs.items():
            key = ".".join(map(str, index)) or "0"
            out[f"{var.path}/{key}"] = ["{{u}}" if where == url else where, offset, length]
    return out


def _inline(var: Variable) -> str:
    assert var.data is not None
    raw = np.ascontiguousarray(var.data, dtype=var.np_dtype).tobytes()
    return "base64:" + base64.b64encode(raw).decode()


def _json_fill(value: Any) -> Any:
    """A fill value as Zarr v2 metadata spells it (non-finite floats as strings)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (np.generic, np.ndarray)):
        value = np.asarray(value).reshape(-1)[0].item()
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
    return value


def _dumps(obj: Any) -> str:
    return json.dumps(_jsonable(obj), sort_keys=True, allow_nan=False)


def dumps_attrs(attrs: dict[str, Any]) -> str:
    """Attributes as JSON, non-finite floats as the literals ``NaN``/``Infinity`` that
    Python's and fsspec's readers accept, so they load back as floats, not strings."""
    return json.dumps(_plain(attrs), sort_keys=True)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return obj


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.generic, float, bytes)):
        return _json_fill(obj)
    return obj


def write_manifest(manifest: Manifest, path: str | Path) -> str:
    """Write atomically; return the SHA-256 of the bytes written."""
    text = json.dumps(to_kerchunk(manifest), sort_keys=True, separators=(",", ":"))
    atomic_write_text(Path(path), text)
    return hashlib.sha256(text.encode()).hexdigest()


# -- reading ---------------------------------------------------------------------------------


def read_manifest_meta(raw: bytes) -> dict[str, Any]:
    """The manifest's own section (identity, scan settings and cost) from its bytes."""
    return json.loads(raw).get("nc2ice", {})


def read_manifest(path: str | Path) -> Manifest:
    doc = json.loads(Path(path).read_text())
    if doc.get("version") != 1 or "refs" not in doc:
        raise ValueError(f"{path}: not a kerchunk v1 reference file")
    return from_kerchunk(doc, source=str(path))


def from_kerchunk(doc: dict[str, Any], source: str = "") -> Manifest:
    refs: dict[str, Any] = doc["refs"]
    meta = doc.get("nc2ice", {})
    groups = {
        key.removesuffix(".zgroup").rstrip("/"): json.loads(refs.get(key[:-7] + ".zattrs", "{}"))
        for key in refs
        if key.endswith(".zgroup")
    }
    variables = {
        key.removesuffix(".zarray").rstrip("/"): _read_variable(key, refs)
        for key in refs
        if key.endswith(".zarray")
    }
    chunks: dict[str, list[tuple[str, Any]]] = {path: [] for path in variables}
    for key, value in refs.items():
        path, _, leaf = key.rpartition("/")
        if not leaf.startswith(".") and path in chunks:
            chunks[path].append((leaf, value))
    templates = doc.get("templates", {})
    for path, found in chunks.items():
        var = variables[path]
        if found and isinstance(found[0][1], str):
            var.data, var.virtual = _decode_inline(found[0][1], var), False
        elif found:
            var.refs = _columns(var, found, templates)
    for path, value in meta.get("storage_fill", {}).items():
        variables[path].storage_fill = _decode_fill(value, variables[path].np_dtype)
    for path, value in meta.get("values", {}).items():
        variables[path].data = _decode_inline(value, variables[path])
    for path, why in meta.get("undecodable", {}).items():
        variables[path].undecodable = why
    for path, types in meta.get("attr_types", {}).items():
        variables[path].attr_types = types
    return Manifest(
        url=meta.get("source", source),
        variables=variables,
        group_attrs=groups,
        notes=list(meta.get("notes", [])),
        group_attr_types=meta.get("group_attr_types", {}),
        identity=meta.get("identity", {}),
        scan=meta.get("scan", {}),
    )


def _columns(var: Variable, found: list[tuple[str, Any]], templates: dict[str, str]) -> ChunkRefs:
    """A variable's references from its chunk keys ("3.0.0": [url, offset, length])."""
    refs = ChunkRefs.empty(var.chunk_grid())
    urls = {u for _, (u, _, _) in found}
    ids = {u: refs.url_id(_expand(u, templates)) for u in sorted(urls)}
    if not var.shape:
        ((_, (url, offset, length)),) = found
        refs.set((), _expand(url, templates), offset, length)
        return refs
    where = tuple(np.array([leaf.split(".") for leaf, _ in found], dtype=np.int64).T)
    refs.file[where] = [ids[u] for _, (u, _, _) in found]
    refs.offsets[where] = [o for _, (_, o, _) in found]
    refs.lengths[where] = [n for _, (_, _, n) in found]
    return refs


def _expand(url: str, templates: dict[str, str]) -> str:
    if url.startswith("{{") and url.endswith("}}"):
        return templates[url[2:-2]]
    return url


def _read_variable(key: str, refs: dict[str, Any]) -> Variable:
    path = key.removesuffix(".zarray").rstrip("/")
    zarray = json.loads(refs[key])
    attrs = json.loads(refs.get(f"{path}/.zattrs", "{}"))
    dims = tuple(attrs.pop("_ARRAY_DIMENSIONS", []))
    fill = zarray.get("fill_value")
    dtype = as_dtype(zarray["dtype"])
    if fill is not None:
        attrs["_FillValue"] = _decode_fill(fill, dtype)
    return Variable(
        path=path,
        dims=dims,
        shape=tuple(zarray["shape"]),
        chunks=tuple(zarray["chunks"]),
        dtype=dtype_str(dtype),
        attrs=attrs,
        filters=zarray.get("filters"),
        compressor=zarray.get("compressor"),
        virtual=True,
    )


def _decode_fill(value: Any, dtype: np.dtype) -> Any:
    """A fill value from its JSON form: non-finite floats were written as words."""
    if isinstance(value, str) and dtype.kind in "fc" and value in _NONFINITE:
        return _NONFINITE[value]
    return value


_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _decode_inline(value: str, var: Variable) -> np.ndarray:
    raw = base64.b64decode(value[7:]) if value.startswith("base64:") else value.encode()
    return np.frombuffer(raw, dtype=var.np_dtype).reshape(var.shape).copy()
