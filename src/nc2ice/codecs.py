"""Codecs: the HDF5 filters of a source as numcodecs configs, and the Zarr 3 pipeline a reader
of the store will need for them.  This and the scanner are the only places that touch
VirtualiZarr's codec helpers, so an upgrade is one change here.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np
from virtualizarr.codecs import convert_to_codec_pipeline, extract_codecs, zarr_codec_config_to_v3
from virtualizarr.parsers.hdf.filters import codecs_from_dataset

Config = dict[str, Any]


def hdf5_codecs(ds: h5py.Dataset) -> tuple[list[Config] | None, Config | None]:
    """A dataset's filters as numcodecs configs: (filters, compressor), Zarr v2 style.

    A filter numcodecs does not know becomes ``{"id": "hdf5_filter_<code>"}``: no reader
    decodes it, so a kerchunk reader of the manifest fails loudly instead of misreading."""
    try:
        codecs = [c.get_config() for c in codecs_from_dataset(ds)]
    except Exception:  # noqa: BLE001 - VirtualiZarr raises bare ValueError/KeyError per filter
        plist = ds.id.get_create_plist()
        codecs = []
        for i in range(plist.get_nfilters()):
            code, _, _, name = plist.get_filter(i)
            codecs.append({"id": f"hdf5_filter_{code}", "name": name.decode(errors="replace")})
    return codecs[:-1] or None, codecs[-1] if codecs else None


def zarr_pipeline(
    dtype: np.dtype, filters: list[Config] | None, compressor: Config | None
) -> tuple[Any, Any, Any]:
    """(filters, serializer, compressors) for ``zarr.create_array``; KeyError when Zarr's
    codec registry does not know one of the codecs (a reader could not decode the chunks)."""
    configs = [*(filters or []), *([compressor] if compressor else [])]
    pipeline = convert_to_codec_pipeline(dtype, [zarr_codec_config_to_v3(dict(c)) for c in configs])
    return extract_codecs(pipeline)


def undecodable(dtype: np.dtype, filters: list[Config] | None, compressor: Config | None) -> str:
    """Why a Zarr reader with this package's dependencies could not decode such chunks, or ""."""
    try:
        zarr_pipeline(dtype, filters, compressor)
    except Exception:  # noqa: BLE001 - any failure to build the pipeline means the same
        configs = [*(filters or []), *([compressor] if compressor else [])]
        names = [str(c.get("name") or c.get("id", "?")) for c in configs]
        return f"Zarr readers have no codec for its HDF5 filter ({', '.join(names)})"
    return ""
