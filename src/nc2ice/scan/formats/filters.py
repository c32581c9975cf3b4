"""An HDF5 dataset's filters as numcodecs configs: VirtualiZarr 2.5's mapping
(``virtualizarr.parsers.hdf.filters``), written out here because importing VirtualiZarr imports
xarray and pandas: half a second for every scan job (tests check the two agree).
"""

from __future__ import annotations

from typing import Any

import h5py

Config = dict[str, Any]
# Filters h5py names by a word; numcodecs ids where they differ.
_BY_NAME = {"gzip": "zlib", "lzf": "imagecodecs_lzf"}
# hdf5plugin filters whose numcodecs codec lives in imagecodecs.
_IMAGECODECS = {"lz4": "imagecodecs_lz4h5", "bzip2": "imagecodecs_bz2"}
_BLOSC_NAMES = {0: "blosclz", 1: "lz4", 2: "lz4hc", 3: "snappy", 4: "zlib", 5: "zstd"}


def hdf5_codecs(ds: h5py.Dataset) -> tuple[list[Config] | None, Config | None]:
    """A dataset's filters as numcodecs configs: (filters, compressor), Zarr v2 style.

    A filter numcodecs does not know becomes ``{"id": "hdf5_filter_<code>"}``: no reader
    decodes it, so a kerchunk reader of the manifest fails loudly instead of misreading."""
    codecs = [_codec(key, props, ds) for key, props in ds._filters.items()]
    return codecs[:-1] or None, codecs[-1] if codecs else None


def _codec(key: str, props: Any, ds: h5py.Dataset) -> Config:
    if not key.isdigit():
        name = _BY_NAME.get(key, key)
        if name == "zlib":
            return {"id": "zlib", "level": props}
        if name == "shuffle" and isinstance(props, tuple):
            return {"id": "shuffle", "elementsize": props[0]}
        return {"id": name}
    import hdf5plugin

    code = int(key)
    known = hdf5plugin.get_filters(code)
    if not known:
        return {"id": f"hdf5_filter_{code}"}
    name = known[0].filter_name
    if name == "blosc" and isinstance(props, tuple):
        blocksize, clevel, shuffle, cname = props[-4:]
        return {
            "id": "blosc",
            "blocksize": blocksize,
            "clevel": clevel,
            "shuffle": shuffle,
            "cname": _BLOSC_NAMES[cname],
        }
    if name == "zstd" and isinstance(props, tuple):
        return {"id": "zstd", "level": props[0]}
    return {"id": _IMAGECODECS.get(name, name)}
