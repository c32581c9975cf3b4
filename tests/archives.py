"""Test archives, generated: each function writes one kind of archive into a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

LAT, LON = 6, 8


def monthly(year: int, months: int = 12, seed: int | None = None) -> xr.Dataset:
    rng = np.random.default_rng(seed if seed is not None else year)
    edges = pd.date_range(f"{year}-01-01", periods=months + 1, freq="MS")
    mid = edges[:-1] + (edges[1:] - edges[:-1]) / 2
    return xr.Dataset(
        {
            "tas": (("time", "lat", "lon"), rng.normal(280, 5, (months, LAT, LON)).astype("f4"),
                    {"units": "K", "standard_name": "air_temperature"}),
            "time_bnds": (("time", "bnds"), np.stack([edges[:-1], edges[1:]], axis=1)),
        },
        coords={
            "time": ("time", mid, {"bounds": "time_bnds", "standard_name": "time"}),
            "lat": ("lat", np.linspace(-75, 75, LAT), {"units": "degrees_north"}),
            "lon": ("lon", np.arange(LON) * 45.0, {"units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.8", "title": "test archive"},
    )


def write(ds: xr.Dataset, path: Path, *, units: str = "days since 2000-01-01",
          tas: dict | None = None, fmt: str = "NETCDF4", **kwargs) -> Path:
    time = {"units": units, "calendar": "standard", "dtype": "f8"}
    encoding = {"time": time, "time_bnds": dict(time)}
    if tas is not None:
        encoding["tas"] = tas
    engine = "scipy" if fmt.startswith("NETCDF3") else "netcdf4"
    ds.to_netcdf(path, format=fmt, engine=engine, encoding=encoding, **kwargs)
    return path


COMPRESSED = {"zlib": True, "complevel": 4, "shuffle": True, "chunksizes": (6, LAT, LON)}


def clean(folder: Path, years=(2000, 2001, 2002)) -> list[Path]:
    """Compressed netCDF4, six-month chunks, one encoding: the easy case."""
    folder.mkdir(parents=True, exist_ok=True)
    return [write(monthly(y), folder / f"tas_{y}.nc", tas=COMPRESSED) for y in years]


def netcdf3(folder: Path, years=(2000, 2001)) -> list[Path]:
    """Classic and 64-bit-offset netCDF3 with time as the record dimension."""
    folder.mkdir(parents=True, exist_ok=True)
    fmts = ["NETCDF3_CLASSIC", "NETCDF3_64BIT"]
    return [
        write(monthly(y), folder / f"tas_{y}.nc", fmt=fmts[i % 2], unlimited_dims=["time"])
        for i, y in enumerate(years)
    ]
