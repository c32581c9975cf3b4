"""One file's references, and their kerchunk v1 JSON form.

A manifest says, for every variable of one source file, how its chunks are encoded and where
they are (URL, offset, length), or holds the values themselves for the small variables that
were loaded while scanning (coordinates, bounds, scalars, strings).  Loaded values are written
inline (``base64:``) as one uncompressed chunk, so the file opens on its own with
``xr.open_dataset(path, engine="kerchunk")`` and loads back here without loss.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ChunkRef = tuple[str, int, int]


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
    refs: dict[tuple[int, ...], ChunkRef] = field(default_factory=dict)
    data: np.ndarray | None = None  # the raw (encoded) values, when loaded
    # What chunks the file never wrote read as, where that is not the CF _FillValue
    # (netCDF-C's default fill, for a variable without a _FillValue attribute).
    storage_fill: Any = None

    @property
    def fill(self) -> Any:
        """The raw value of a missing chunk's elements."""
        value = self.attrs.get("_FillValue", self.storage_fill)
        return 0 if value is None else value

    @property
    def loaded(self) -> bool:
        return self.data is not None

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
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def chunk_grid(self) -> tuple[int, ...]:
        return tuple(math.ceil(s / c) for s, c in zip(self.shape, self.chunks, strict=True))


@dataclass
class Manifest:
    url: str
    variables: dict[str, Variable]
    group_attrs: dict[str, dict[str, Any]]  # "" is the root group
    notes: list[str] = field(default_factory=list)  # what the scan loaded or left out, and why


# -- writing ---------------------------------------------------------------------------------


def to_kerchunk(manifest: Manifest) -> dict[str, Any]:
    refs: dict[str, Any] = {}
    for group, attrs in manifest.group_attrs.items():
        prefix = f"{group}/" if group else ""
        refs[f"{prefix}.zgroup"] = json.dumps({"zarr_format": 2})
        refs[f"{prefix}.zattrs"] = _dumps(attrs)
    for var in manifest.variables.values():
        refs.update(_variable_refs(var))
    meta: dict[str, Any] = {"source": manifest.url, "notes": manifest.notes}
    fills = {
        v.path: _json_fill(v.storage_fill)
        for v in manifest.variables.values()
        if v.storage_fill is not None
    }
    if fills:
        meta["storage_fill"] = fills  # kerchunk readers ignore this key
    return {"version": 1, "refs": refs, "nc2ice": meta}


def _variable_refs(var: Variable) -> dict[str, Any]:
    attrs = dict(var.attrs)
    fill = attrs.pop("_FillValue", None)
    attrs["_ARRAY_DIMENSIONS"] = list(var.dims)
    loaded = var.data is not None
    zarray = {
        "zarr_format": 2,
        "shape": list(var.shape),
        "chunks": list(var.shape if loaded else var.chunks),
        "dtype": np.dtype(var.dtype).str,
        "fill_value": _json_fill(fill),
        "order": "C",
        "filters": None if loaded else var.filters,
        "compressor": None if loaded else var.compressor,
    }
    out: dict[str, Any] = {
        f"{var.path}/.zarray": _dumps(zarray),
        f"{var.path}/.zattrs": _dumps(attrs),
    }
    if loaded:
        key = ".".join("0" for _ in var.shape) or "0"
        out[f"{var.path}/{key}"] = "base64:" + base64.b64encode(_raw_bytes(var)).decode()
    else:
        for index, (url, offset, length) in sorted(var.refs.items()):
            key = ".".join(map(str, index)) or "0"
            out[f"{var.path}/{key}"] = [url, offset, length]
    return out


def _raw_bytes(var: Variable) -> bytes:
    assert var.data is not None
    return np.ascontiguousarray(var.data, dtype=np.dtype(var.dtype)).tobytes()


def _json_fill(value: Any) -> Any:
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


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- reading ---------------------------------------------------------------------------------


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
    for key, value in refs.items():
        path, _, leaf = key.rpartition("/")
        if leaf.startswith(".") or path not in variables:
            continue
        var = variables[path]
        if isinstance(value, str):
            var.data = _decode_inline(value, var)
        else:
            index = tuple(int(i) for i in leaf.split(".")) if var.shape else ()
            url, offset, length = value
            var.refs[index] = (url, int(offset), int(length))
    for path, value in meta.get("storage_fill", {}).items():
        variables[path].storage_fill = _decode_fill(value, np.dtype(variables[path].dtype))
    return Manifest(
        url=meta.get("source", source),
        variables=variables,
        group_attrs=groups,
        notes=list(meta.get("notes", [])),
    )


def _read_variable(key: str, refs: dict[str, Any]) -> Variable:
    path = key.removesuffix(".zarray").rstrip("/")
    zarray = json.loads(refs[key])
    attrs = json.loads(refs.get(f"{path}/.zattrs", "{}"))
    dims = tuple(attrs.pop("_ARRAY_DIMENSIONS", []))
    fill = zarray.get("fill_value")
    dtype = np.dtype(zarray["dtype"])
    if fill is not None:
        attrs["_FillValue"] = _decode_fill(fill, dtype)
    return Variable(
        path=path,
        dims=dims,
        shape=tuple(zarray["shape"]),
        chunks=tuple(zarray["chunks"]),
        dtype=dtype.str,
        attrs=attrs,
        filters=zarray.get("filters"),
        compressor=zarray.get("compressor"),
    )


def _decode_fill(value: Any, dtype: np.dtype) -> Any:
    if isinstance(value, str) and dtype.kind in "fc":
        return float(value)
    return value


def _decode_inline(value: str, var: Variable) -> np.ndarray:
    raw = base64.b64decode(value[7:]) if value.startswith("base64:") else value.encode()
    return np.frombuffer(raw, dtype=np.dtype(var.dtype)).reshape(var.shape).copy()
