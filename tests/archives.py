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
            "tas": (
                ("time", "lat", "lon"),
                rng.normal(280, 5, (months, LAT, LON)).astype("f4"),
                {"units": "K", "standard_name": "air_temperature"},
            ),
            "time_bnds": (("time", "bnds"), np.stack([edges[:-1], edges[1:]], axis=1)),
        },
        coords={
            "time": ("time", mid, {"bounds": "time_bnds", "standard_name": "time"}),
            "lat": ("lat", np.linspace(-75, 75, LAT), {"units": "degrees_north"}),
            "lon": ("lon", np.arange(LON) * 45.0, {"units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.8", "title": "test archive"},
    )


def write(
    ds: xr.Dataset,
    path: Path,
    *,
    units: str = "days since 2000-01-01",
    tas: dict | None = None,
    fmt: str = "NETCDF4",
    **kwargs,
) -> Path:
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


def raw(chunks=None, contiguous=False) -> dict:
    """Uncompressed tas, chunked or contiguous."""
    return {"contiguous": True} if contiguous else {"chunksizes": chunks, "contiguous": False}


def packed(scale: float) -> dict:
    return {"dtype": "i2", "scale_factor": scale, "add_offset": 280.0, "_FillValue": -32767}


def uneven_uncompressed(folder: Path) -> list[Path]:
    """Uncompressed files chunked 6, contiguous (12), 4, and a short contiguous last file:
    every one of them can be split into references on one grid, so nothing is copied."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write(monthly(2000), folder / "tas_2000.nc", tas=raw((6, LAT, LON))),
        write(monthly(2001), folder / "tas_2001.nc", tas=raw(contiguous=True)),
        write(monthly(2002), folder / "tas_2002.nc", tas=raw((4, LAT, LON))),
        write(monthly(2003, months=6), folder / "tas_2003.nc", tas=raw(contiguous=True)),
    ]


def uneven_compressed(folder: Path) -> list[Path]:
    """Compressed files chunked 6, 6, then 4 (another time chunk length), then a last file of
    3 months in one chunk: the 12 + 3 months of the last two must be copied."""
    folder.mkdir(parents=True, exist_ok=True)
    four = {**COMPRESSED, "chunksizes": (4, LAT, LON)}
    three = {**COMPRESSED, "chunksizes": (3, LAT, LON)}
    return [
        write(monthly(2000), folder / "tas_2000.nc", tas=COMPRESSED),
        write(monthly(2001), folder / "tas_2001.nc", tas=COMPRESSED),
        write(monthly(2002), folder / "tas_2002.nc", tas=four),
        write(monthly(2003, months=3), folder / "tas_2003.nc", tas=three),
    ]


def daily(year: int) -> xr.Dataset:
    days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
    rng = np.random.default_rng(year)
    return xr.Dataset(
        {"pr": (("time", "lat", "lon"), rng.gamma(2, 1, (days.size, LAT, LON)).astype("f4"))},
        coords={"time": days, "lat": np.linspace(-75, 75, LAT), "lon": np.arange(LON) * 45.0},
    )


def leap_years(folder: Path) -> list[Path]:
    """Yearly files of daily data, 365 and 366 days, each written contiguous (one chunk)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for year in (2003, 2004, 2005):
        path = folder / f"pr_{year}.nc"
        daily(year).to_netcdf(
            path, encoding={"pr": {"contiguous": True}, "time": {"units": "days since 1850-01-01"}}
        )
        out.append(path)
    return out


def time_units(folder: Path) -> list[Path]:
    """Time and time bounds in days since 1930 in one file, since 2000 in the others."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write(monthly(2000), folder / "tas_2000.nc", tas=COMPRESSED),
        write(monthly(2001), folder / "tas_2001.nc", tas=COMPRESSED, units="days since 1930-01-01"),
        write(
            monthly(2002), folder / "tas_2002.nc", tas=COMPRESSED, units="hours since 2002-01-01"
        ),
    ]


def packing(folder: Path) -> list[Path]:
    """int16 tas packed with a scale_factor that differs from file to file."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write(monthly(2000), folder / "tas_2000.nc", tas=packed(0.01)),
        write(monthly(2001), folder / "tas_2001.nc", tas=packed(0.02)),
    ]


def awkward(folder: Path) -> list[Path]:
    """Variable-length strings, scalars (one in HDF5 compact layout), a netCDF4 group."""
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for year in (2000, 2001):
        ds = monthly(year)
        ds["label"] = ("time", np.array([f"month {i} of {year}" for i in range(12)], dtype=object))
        ds["realization"] = ((), np.int32(1), {"long_name": "ensemble member"})
        path = write(ds, folder / f"tas_{year}.nc", tas=COMPRESSED)
        ocean = xr.Dataset(
            {"sst": (("time", "lat", "lon"), monthly(year, seed=year + 7).tas.values - 5)},
            attrs={"realm": "ocean"},
        )
        ocean.to_netcdf(path, mode="a", group="ocean", encoding={"sst": {**COMPRESSED}})
        with h5py.File(path, "a") as f:
            space = h5py.h5s.create(h5py.h5s.SCALAR)
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_layout(h5py.h5d.COMPACT)
            dsid = h5py.h5d.create(f.id, b"height", h5py.h5t.IEEE_F64LE, space, dcpl=dcpl)
            dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(2.0))
            f["height"].attrs["units"] = "m"
        out.append(path)
    return out


def drift_variables(folder: Path) -> list[Path]:
    """One file lacks time_bnds; another has an extra variable."""
    folder.mkdir(parents=True, exist_ok=True)
    extra = monthly(2002)
    extra["huss"] = extra.tas * 0.001
    return [
        write(monthly(2000), folder / "tas_2000.nc", tas=COMPRESSED),
        _without_bounds(folder),
        write(extra, folder / "tas_2002.nc", tas=COMPRESSED),
    ]


def _without_bounds(folder: Path) -> Path:
    ds = monthly(2001).drop_vars("time_bnds")
    ds.time.attrs.pop("bounds")
    path = folder / "tas_2001.nc"
    ds.to_netcdf(
        path,
        encoding={"time": {"units": "days since 2000-01-01", "dtype": "f8"}, "tas": COMPRESSED},
    )
    return path


def drift_dimensions(folder: Path) -> list[Path]:
    """The same variables, but one file on a coarser grid."""
    folder.mkdir(parents=True, exist_ok=True)
    coarse = monthly(2001).isel(lat=slice(0, 3))
    return [
        write(monthly(2000), folder / "tas_2000.nc", tas=COMPRESSED),
        write(coarse, folder / "tas_2001.nc", tas={**COMPRESSED, "chunksizes": (6, 3, LON)}),
    ]


def static_differs(folder: Path) -> list[Path]:
    """A variable without time (orography) that is not the same in every file."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for year in (2000, 2001):
        ds = monthly(year)
        ds["orog"] = (("lat", "lon"), np.full((LAT, LON), float(year), dtype="f4"))
        out.append(write(ds, folder / f"tas_{year}.nc", tas=COMPRESSED))
    return out


def mixed_formats(folder: Path) -> list[Path]:
    """netCDF3 beside netCDF4: big-endian and uncompressed among little-endian compressed."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write(monthly(2000), folder / "tas_2000.nc", tas=COMPRESSED),
        write(monthly(2001), folder / "tas_2001.nc", fmt="NETCDF3_64BIT"),
        write(monthly(2002), folder / "tas_2002.nc", tas=COMPRESSED),
    ]
