"""netCDF3 files (classic CDF-1, 64-bit offset CDF-2, 64-bit data CDF-5) → a Manifest.

The header is parsed here from the format specification rather than through kerchunk's
``NetCDF3ToZarr`` (which ``NetCDF3Parser`` wraps): that one reads through fsspec, outside the
stores and credentials this workflow configures, turns numeric attributes into strings and
takes ``missing_value`` for the fill value.  The header is small and usually comes in the
first block the reader fetches.

Data are never compressed.  A fixed-size variable is one contiguous chunk; a record variable
has one chunk per record, ``recsize`` bytes apart.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from nc2ice.errors import ScanError
from nc2ice.model.manifest import Manifest, Variable
from nc2ice.model.refs import ChunkRefs
from nc2ice.scan.formats import Ranges, run_steps
from nc2ice.scan.formats.policy import COORDINATE_CAP, bounds_names, should_load

_TYPES = {1: "i1", 2: "S1", 3: ">i2", 4: ">i4", 5: ">f4", 6: ">f8"}
_TYPES_CDF5 = {7: "u1", 8: ">u2", 9: ">u4", 10: ">i8", 11: ">u8"}
_DIMENSION, _VARIABLE, _ATTRIBUTE = 10, 11, 12


@dataclass
class _Var:
    name: str
    dimids: list[int]
    attrs: tuple[dict[str, Any], dict[str, str]]
    dtype: np.dtype
    vsize: int
    begin: int


class FormatError(ScanError):
    """A netCDF3 header that does not follow the format: a corrupt or truncated file."""


class _Header:
    def __init__(self, f: BinaryIO):
        self.f = f
        magic = f.read(4)
        self.version = magic[3]
        self.size_fmt = ">q" if self.version == 5 else ">i"  # NON_NEG counts
        self.offset_fmt = ">i" if self.version == 1 else ">q"
        self.types = {**_TYPES, **(_TYPES_CDF5 if self.version == 5 else {})}

    def _unpack(self, fmt: str) -> int:
        n = struct.calcsize(fmt)
        data = self.f.read(n)
        if len(data) != n:
            raise FormatError("the netCDF3 header ends early: the file is truncated")
        return struct.unpack(fmt, data)[0]

    def type(self) -> np.dtype:
        code = self._unpack(">i")
        if code not in self.types:
            raise FormatError(f"corrupt netCDF3 header (unknown type code {code})")
        return np.dtype(self.types[code])

    def count(self) -> int:
        return self._unpack(self.size_fmt)

    def name(self) -> str:
        n = self.count()
        raw = self.f.read(n + (-n % 4))
        return raw[:n].decode("utf-8", "replace")

    def listing(self, tag: int) -> int:
        found, n = self._unpack(">i"), self.count()
        if found not in (0, tag) or n < 0:
            raise FormatError(f"corrupt netCDF3 header (expected tag {tag}, found {found})")
        return n

    def attrs(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Attribute values, and the numpy type of the numeric ones."""
        out, types = {}, {}
        for _ in range(self.listing(_ATTRIBUTE)):
            name = self.name()
            dtype = self.type()
            n = self.count()
            nbytes = n * dtype.itemsize
            raw = self.f.read(nbytes + (-nbytes % 4))[:nbytes]
            if len(raw) != nbytes:
                raise FormatError("the netCDF3 header ends early: the file is truncated")
            if dtype.kind == "S":
                out[name] = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
            else:
                values = np.frombuffer(raw, dtype=dtype)
                out[name] = values[0].item() if n == 1 else values.tolist()
                types[name] = dtype.name
        return out, types


def scan_netcdf3(url: str, fileobj: BinaryIO, size: int, inline_limit: int) -> Manifest:
    """A file's manifest (the reader fetches what it needs as it goes)."""
    return run_steps(netcdf3_steps(url, fileobj, size, inline_limit))


def netcdf3_steps(
    url: str, fileobj: BinaryIO, size: int, inline_limit: int
) -> Generator[Ranges, None, Manifest]:
    """The header, then the values to load, whose byte ranges are yielded first (as
    ``hdf5_steps`` does): a record coordinate is spread over the whole file."""
    h = _Header(fileobj)
    if h.version not in (1, 2, 5):
        raise FormatError(f"unknown netCDF3 version byte {h.version}")
    numrecs = h.count()
    dims = [(h.name(), h.count()) for _ in range(h.listing(_DIMENSION))]
    global_attrs = h.attrs()
    variables = []
    for _ in range(h.listing(_VARIABLE)):
        name = h.name()
        dimids = [h.count() for _ in range(h.count())]
        attrs = h.attrs()
        dtype = h.type()
        vsize, begin = h.count(), h._unpack(h.offset_fmt)
        variables.append(_Var(name, dimids, attrs, dtype, vsize, begin))

    record_vars = [v for v in variables if v.dimids and dims[v.dimids[0]][1] == 0]
    recsize = sum(v.vsize for v in record_vars)
    if len(record_vars) == 1:  # a lone record variable is not padded
        v = record_vars[0]
        recsize = v.dtype.itemsize * math.prod(dims[d][1] for d in v.dimids[1:])
    if numrecs in (-1, 2**32 - 1, 2**64 - 1) or numrecs < 0:  # STREAMING: count from the size
        first = min((v.begin for v in record_vars), default=size)
        numrecs = (size - first) // recsize if recsize else 0

    manifest = Manifest(
        url=url,
        variables={},
        group_attrs={"": global_attrs[0]},
        group_attr_types={"": global_attrs[1]},
    )
    for v in variables:
        is_record = v in record_vars
        shape = tuple(
            numrecs if is_record and i == 0 else dims[d][1] for i, d in enumerate(v.dimids)
        )
        var = Variable(
            path=v.name,
            dims=tuple(dims[d][0] for d in v.dimids),
            shape=shape,
            chunks=(1, *shape[1:]) if is_record else shape,
            dtype=v.dtype.str,
            attrs=v.attrs[0],
            attr_types=v.attrs[1],
            virtual=True,
        )
        nbytes = v.dtype.itemsize * math.prod(var.chunks)
        var.refs = ChunkRefs.empty(var.chunk_grid(), [url])
        if is_record:  # one chunk per record, a record's size apart
            var.refs.offsets.reshape(-1)[:] = v.begin + recsize * np.arange(numrecs)
            var.refs.lengths[...] = nbytes
        elif math.prod(shape) > 0:
            var.refs.offsets[...], var.refs.lengths[...] = v.begin, nbytes
        _check_within(url, var, size)
        manifest.variables[v.name] = var
    loads = _to_load(manifest, inline_limit)
    ranges = [(offset, length) for var in loads for _, offset, length in var.refs.values()]
    if ranges:
        yield ranges
    for var in loads:
        _load(var, fileobj)
    return manifest


def _check_within(url: str, var: Variable, size: int) -> None:
    ends = var.refs.offsets + var.refs.lengths
    if ends.size and int(ends.max()) > size:
        raise FormatError(
            f"truncated: variable {var.path!r} needs bytes up to {int(ends.max())} "
            f"but the file has {size}"
        )


def _to_load(manifest: Manifest, limit: int) -> list[Variable]:
    """Coordinates, bounds and small variables (which keep their references too), and
    character arrays (loaded only: they are text, not numbers)."""
    bounds = bounds_names(manifest.variables.values())
    loads = []
    for var in list(manifest.variables.values()):
        is_text = var.dtype.endswith("S1")
        if not (is_text or should_load(var, bounds, limit)):
            continue
        if is_text and var.nbytes > COORDINATE_CAP:
            manifest.notes.append(f"left out {var.path!r}: a character array too large to load")
            del manifest.variables[var.path]
            continue
        loads.append(var)
    return loads


def _load(var: Variable, f: BinaryIO) -> None:
    if not var.refs:
        var.data = np.full(var.shape, var.attrs.get("_FillValue", 0), dtype=var.dtype)
        return
    parts = []
    for _, offset, length in sorted(var.refs.values(), key=lambda r: r[1]):
        f.seek(offset)
        parts.append(f.read(length))
    var.data = np.frombuffer(b"".join(parts), dtype=var.dtype).reshape(var.shape).copy()
    if var.dtype.endswith("S1"):
        var.refs, var.virtual = var.no_refs(), False
