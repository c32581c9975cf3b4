"""The embedded demo archive: a small, deterministic, CF-style model output in several files.

It is generated rather than shipped, and it is as messy as real archives are:

- monthly files of one year each, compressed and chunked six months at a time;
- one year written by another tool: time in ``days since 1850-01-01`` instead of
  ``days since 2000-01-01``, time bounds too (harmonised to one encoding);
- a last file that covers only three months (one smaller chunk: copied into the store).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

YEARS = (2000, 2001, 2002, 2003)


def demo_dataset(year: int, months: int = 12) -> xr.Dataset:
    rng = np.random.default_rng(year)
    start = pd.date_range(f"{year}-01-01", periods=months + 1, freq="MS")
    lat = np.linspace(-87.5, 87.5, 36)
    lon = np.arange(0, 360, 5.0)
    seasonal = 10 * np.cos(2 * np.pi * (start[:-1].month.values[:, None, None] - 1) / 12)
    base = 288 - 30 * np.abs(np.sin(np.deg2rad(lat)))[None, :, None]
    tas = (base + seasonal + rng.normal(0, 1, (months, lat.size, lon.size))).astype("f4")
    mid = start[:-1] + (start[1:] - start[:-1]) / 2
    ds = xr.Dataset(
        {
            "tas": (
                ("time", "lat", "lon"),
                tas,
                {"standard_name": "air_temperature", "units": "K"},
            ),
            "time_bnds": (("time", "bnds"), np.stack([start[:-1], start[1:]], axis=1)),
        },
        coords={
            "time": ("time", mid, {"standard_name": "time", "bounds": "time_bnds"}),
            "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.8", "title": "nc2ice demo archive", "source": "synthetic"},
    )
    ds.tas.encoding["_FillValue"] = np.float32(1e20)
    return ds


def write_demo(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for year in YEARS:
        path = folder / f"tas_Amon_demo_{year}01-{year}12.nc"
        ds = demo_dataset(year)
        time_units = {"units": "days since 2000-01-01", "calendar": "standard", "dtype": "f8"}
        if year == 2002:
            time_units = {"units": "days since 1850-01-01", "calendar": "standard", "dtype": "f8"}
        tas = {"zlib": True, "complevel": 4, "shuffle": True, "chunksizes": (6, 36, 72)}
        encoding = {"time": time_units, "time_bnds": time_units, "tas": tas}
        ds.to_netcdf(_tmp(path), engine="netcdf4", encoding=encoding)
        _tmp(path).replace(path)
        paths.append(path)
    last = folder / "tas_Amon_demo_200401-200403.nc"
    tas = {"zlib": True, "complevel": 4, "shuffle": True, "chunksizes": (3, 36, 72)}
    time_units = {"units": "days since 2000-01-01", "calendar": "standard", "dtype": "f8"}
    demo_dataset(2004, months=3).to_netcdf(
        _tmp(last),
        engine="netcdf4",
        encoding={"time": time_units, "time_bnds": time_units, "tas": tas},
    )
    _tmp(last).replace(last)
    return [*paths, last]


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")
