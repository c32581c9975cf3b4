"""Reading a variable's values from its chunk references (to copy what cannot be referenced)."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable

import numcodecs
import numpy as np

from nc2ice.access import Access
from nc2ice.errors import ScanError
from nc2ice.model.manifest import Variable


def decode_chunk(var: Variable, raw: bytes) -> np.ndarray:
    data: bytes | np.ndarray = raw
    codecs = [*(var.filters or []), *([var.compressor] if var.compressor else [])]
    for config in reversed(codecs):
        data = numcodecs.get_codec(dict(config)).decode(data)
    return np.frombuffer(bytes(memoryview(data)), dtype=var.np_dtype).reshape(var.chunks)


def _decoded(var: Variable, raw: bytes, url: str, index: tuple[int, ...]) -> np.ndarray:
    """A chunk decoded; bytes its codecs cannot decode are a fault of the file (corrupt, or
    rewritten while it was read), said in one line, not a codec's traceback."""
    try:
        return decode_chunk(var, raw)
    except Exception as exc:  # noqa: BLE001 - zlib, numcodecs and numpy raise many types
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ScanError(
            f"{url}: cannot decode chunk {index} of {var.path!r} ({text}): the file is "
            "corrupt, or it changed while it was read"
        ) from None


Fetch = Callable[[str, list[int], list[int]], list[bytes]]  # url, offsets, lengths → bytes


def read_region(var: Variable, region: tuple[slice, ...], access: Access) -> np.ndarray:
    """The raw (still CF-encoded) values of ``var[region]``, fetching only the chunks needed."""
    if var.data is not None:
        return var.data[region]
    if var.undecodable and var.refs:
        return _read_with_h5py(var, region, access)
    return assemble(var, region, access.get_ranges)


def assemble(var: Variable, region: tuple[slice, ...], fetch: Fetch) -> np.ndarray:
    """``var[region]`` from its referenced chunks, decoded with their codecs; chunks the
    file never wrote read as its fill value."""
    bounds = [
        (s.start or 0, s.stop if s.stop is not None else n)
        for s, n in zip(region, var.shape, strict=True)
    ]
    out = np.full([hi - lo for lo, hi in bounds], var.fill, dtype=var.np_dtype)
    indices = itertools.product(
        *(range(lo // c, math.ceil(hi / c)) for (lo, hi), c in zip(bounds, var.chunks, strict=True))
    )
    wanted = [(i, var.refs[i]) for i in indices if i in var.refs]
    by_url: dict[str, list[tuple[tuple[int, ...], int, int]]] = defaultdict(list)
    for index, (url, offset, length) in wanted:
        by_url[url].append((index, offset, length))
    for url, items in by_url.items():
        blobs = fetch(url, [o for _, o, _ in items], [n for _, _, n in items])
        for (index, _, _), raw in zip(items, blobs, strict=True):
            _paste(out, bounds, index, var.chunks, _decoded(var, raw, url, index))
    return out


def whole(var: Variable) -> tuple[slice, ...]:
    return tuple(slice(0, n) for n in var.shape)


def _read_with_h5py(var: Variable, region: tuple[slice, ...], access: Access) -> np.ndarray:
    """Values whose HDF5 filter only h5py (with hdf5plugin) can decode."""
    import h5py
    import hdf5plugin  # noqa: F401 - registers the filters

    url = next(iter(var.refs.values()))[0]
    # tied to the version the scan recorded, where the commit pinned it (Access.pinned)
    reader = access.reader(url, head_bytes=4 << 20, block_bytes=4 << 20)
    with h5py.File(reader, mode="r") as f:
        return np.asarray(f[var.path][region], dtype=var.np_dtype)


def _paste(out: np.ndarray, bounds, index, chunks, chunk: np.ndarray) -> None:
    src, dst = [], []
    for (lo, hi), i, c in zip(bounds, index, chunks, strict=True):
        start, stop = max(lo, i * c), min(hi, (i + 1) * c)
        src.append(slice(start - i * c, stop - i * c))
        dst.append(slice(start - lo, stop - lo))
    out[tuple(dst)] = chunk[tuple(src)]
