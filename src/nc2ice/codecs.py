"""Codecs: the HDF5 filters of a source as numcodecs configs, and the Zarr 3 pipeline a reader
of the store will need for them.

The filter mapping is VirtualiZarr 2.5's (``virtualizarr.parsers.hdf.filters``), written out
here because importing VirtualiZarr imports xarray and pandas: half a second for every scan
job (tests/test_formats.py checks the two agree).  The commit builds the Zarr pipeline with
VirtualiZarr's own helpers.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

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


def zarr_pipeline(
    dtype: np.dtype, filters: list[Config] | None, compressor: Config | None
) -> tuple[Any, Any, Any]:
    """(filters, serializer, compressors) for ``zarr.create_array``; KeyError when Zarr's
    codec registry does not know one of the codecs (a reader could not decode the chunks)."""
    from virtualizarr.codecs import (
        convert_to_codec_pipeline,
        extract_codecs,
        zarr_codec_config_to_v3,
    )

    configs = [*(filters or []), *([compressor] if compressor else [])]
    pipeline = convert_to_codec_pipeline(dtype, [zarr_codec_config_to_v3(dict(c)) for c in configs])
    return extract_codecs(pipeline)


def undecodable(filters: list[Config] | None, compressor: Config | None) -> str:
    """Why a Zarr reader with this package's dependencies could not decode such chunks, or
    "" (Zarr finds numcodecs' codecs in its registry as ``numcodecs.<id>``)."""
    from zarr.registry import get_codec_class

    missing = []
    for config in [*(filters or []), *([compressor] if compressor else [])]:
        try:
            get_codec_class(f"numcodecs.{config['id']}")
        except KeyError:
            missing.append(config["id"])
    return f"Zarr readers have no codec for {', '.join(missing)}" if missing else ""
