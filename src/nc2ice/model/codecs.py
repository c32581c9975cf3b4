"""Codecs: the Zarr 3 pipeline a reader of the store needs for a source's filters (given as
numcodecs configs: ``nc2ice.scan.formats.filters``), built with VirtualiZarr's own helpers, and
which filters no Zarr reader could decode."""

from __future__ import annotations

from typing import Any

import numpy as np

Config = dict[str, Any]


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
