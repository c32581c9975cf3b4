"""Test archives, generated: each function writes one kind of archive into a folder."""

from __future__ import annotations

import warnings
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


def beyond_2262(folder: Path) -> list[Path]:
    """Years 2261 and 2262: the second file runs past 2262-04-11, the last date numpy's
    nanoseconds hold, so the store (and that file) decode to cftime, the first file to numpy."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for year in (2261, 2262):
        edges = xr.date_range(f"{year}-01-01", periods=13, freq="MS", use_cftime=True)
        ds = monthly(year)
        ds["time_bnds"] = (("time", "bnds"), np.stack([edges[:-1], edges[1:]], axis=1))
        ds = ds.assign_coords(time=("time", edges[:-1] + (edges[1:] - edges[:-1]) / 2))
        ds["time"].attrs = {"bounds": "time_bnds", "standard_name": "time"}
        out.append(write(ds, folder / f"tas_{year}.nc", units="days since 1850-01-01"))
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


def fill_values(folder: Path) -> list[Path]:
    """float32 tas whose _FillValue differs from file to file, with missing values in each."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for year, fill in ((2000, 1e20), (2001, -999.0)):
        ds = monthly(year)
        ds["tas"][0, 0, :2] = np.nan
        encoding = {"zlib": True, "_FillValue": np.float32(fill)}
        out.append(write(ds, folder / f"tas_{year}.nc", tas=encoding))
    return out


def empty_file(folder: Path) -> list[Path]:
    """A last file with no time steps (a run killed after writing its header)."""
    folder.mkdir(parents=True, exist_ok=True)
    unlimited = {"unlimited_dims": ["time"]}
    out = [
        write(monthly(y), folder / f"tas_{y}.nc", tas=COMPRESSED, **unlimited) for y in (2000, 2001)
    ]
    empty = monthly(2002).isel(time=slice(0, 0))
    return [*out, write(empty, folder / "tas_2002.nc", tas=COMPRESSED, **unlimited)]


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


CMOR = {"zlib": True, "complevel": 4, "shuffle": True, "chunksizes": (1, LAT, LON)}


def tiny_last_file(folder: Path) -> list[Path]:
    """One time step per chunk, and a last file of one month: small enough to be loaded
    while scanning, and still referenced, not copied."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write(monthly(2000), folder / "tas_2000.nc", tas=CMOR),
        write(monthly(2001, months=1), folder / "tas_2001.nc", tas=CMOR),
    ]


def unnamed_dims(folder: Path) -> list[Path]:
    """Plain HDF5 (no dimension scales): two unnamed dimensions of different sizes, and one
    dataset that uses one size twice; netCDF-C calls them phony_dim_0, phony_dim_1, ..."""
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(2):
        path = folder / f"plain_{i}.h5"
        rng = np.random.default_rng(i)
        with h5py.File(path, "w") as f:
            f.create_dataset("temp", data=rng.normal(size=(4, 3)).astype("f4"), chunks=(2, 3))
            f.create_dataset("depth", data=np.arange(3.0))
            f.create_dataset("corr", data=rng.normal(size=(4, 4)))
            f.attrs["title"] = "plain HDF5"
        out.append(path)
    return out


def cdf5(folder: Path) -> list[Path]:
    """netCDF3 CDF-5 (64-bit data) written by netCDF-C: unsigned and 64-bit integers, time as
    the record dimension (xarray would coerce the types to netCDF3 classic ones)."""
    import netCDF4

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, year in enumerate((2000, 2001)):
        path = folder / f"tas_{year}.nc"
        with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_DATA") as nc:
            nc.createDimension("time", None)
            nc.createDimension("lat", LAT)
            time = nc.createVariable("time", "f8", ("time",))
            time.units, time.calendar = "days since 2000-01-01", "standard"
            time[:] = 366.0 * i + np.arange(12) * 30
            nc.createVariable("lat", "f4", ("lat",))[:] = np.linspace(-75, 75, LAT)
            count = nc.createVariable("count", "u4", ("time", "lat"))
            count[:] = np.arange(12 * LAT, dtype="u4").reshape(12, LAT) + 4_000_000_000
            nc.createVariable("big", "i8", ("time",))[:] = np.arange(12) + 2**40 + year
            tas = nc.createVariable("tas", "f4", ("time", "lat"))
            tas[:] = np.random.default_rng(year).normal(280, 5, (12, LAT))
            tas.units = "K"
            nc.title = "CDF-5 test"
        out.append(path)
    return out


def restarting_counter(folder: Path) -> list[Path]:
    """NEMO-style: every file's concatenation coordinate (time_counter) restarts at 0; the
    real time is in another variable. Only the order the files are listed in is right."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for month in range(3):
        rng = np.random.default_rng(month)
        ds = xr.Dataset(
            {
                "sst": (("time_counter", "y", "x"), rng.normal(15, 2, (2, LAT, LON)).astype("f4")),
                "time_centered": ("time_counter", np.array([30.0, 45.0]) + 60 * month),
            },
            coords={"time_counter": ("time_counter", np.array([0.0, 1.0]), {"units": "1"})},
        )
        ds.time_centered.attrs["units"] = "days since 2000-01-01"
        path = folder / f"nemo_{month}.nc"
        ds.to_netcdf(path, encoding={"sst": {"zlib": True, "chunksizes": (1, LAT, LON)}})
        out.append(path)
    return out


ATTRIBUTE_ZOO = {
    "byte": np.int8(-3),
    "ubyte": np.uint8(250),
    "short": np.int16(-300),
    "ushort": np.uint16(60000),
    "int": np.int32(-70000),
    "uint": np.uint32(4000000000),
    "int64": np.int64(-(2**40)),
    "uint64": np.uint64(2**63 + 5),
    "float": np.float32(0.1),
    "double": np.float64(0.1),
    "nan": np.float32("nan"),
    "inf": np.float64("inf"),
    "floats": np.array([1.5, np.nan, -np.inf], dtype="f4"),
    "shorts": np.array([1, 2, 3], dtype="i2"),
    "text": "a char attribute",
}


def attribute_zoo(folder: Path) -> list[Path]:
    """Attributes of every netCDF type, NaN and infinities included, on variables and the
    file, plus string (NC_STRING) scalars and arrays written through netCDF-C."""
    import netCDF4

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for year in (2000, 2001):
        path = write(monthly(year), folder / f"tas_{year}.nc", tas=COMPRESSED)
        with netCDF4.Dataset(path, "a") as nc:
            for target in (nc, nc["tas"]):
                for key, value in ATTRIBUTE_ZOO.items():
                    target.setncattr(key, value)
                target.setncattr_string("strings", ["one", "two"])
                target.setncattr_string("string", "single NC_STRING")
        out.append(path)
    return out


def hdf5_filters(folder: Path) -> list[Path]:
    """HDF5 filters Zarr has no codec for: LZ4 (hdf5plugin) on the big variable, LZF (h5py's
    own) on a small one. Written by h5netcdf, so they are netCDF4 files otherwise."""
    import hdf5plugin

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for year in (2000, 2001):
        ds = monthly(year)
        ds["flag"] = (("lat", "lon"), np.ones((LAT, LON), dtype="i2"))
        path = folder / f"tas_{year}.nc"
        lz4 = {**hdf5plugin.LZ4(), "chunksizes": (6, LAT, LON)}
        encoding = {
            "tas": {
                "compression": lz4["compression"],
                "compression_opts": lz4["compression_opts"],
                "chunksizes": (6, LAT, LON),
            },
            "flag": {"compression": "lzf", "chunksizes": (LAT, LON)},
            "time": {"units": "days since 2000-01-01", "dtype": "f8"},
            "time_bnds": {"units": "days since 2000-01-01", "dtype": "f8"},
        }
        with warnings.catch_warnings():  # "invalid netcdf features": the filters, on purpose
            warnings.simplefilter("ignore")
            ds.to_netcdf(path, engine="h5netcdf", encoding=encoding, invalid_netcdf=True)
        out.append(path)
    return out


def packed_float32(folder: Path) -> list[Path]:
    """int16 tas with float32 scale_factor and add_offset, as netCDF-C writes them: netCDF
    readers decode it to float32."""
    folder.mkdir(parents=True, exist_ok=True)
    packing = {
        "dtype": "i2",
        "scale_factor": np.float32(0.01),
        "add_offset": np.float32(280.0),
        "_FillValue": np.int16(-32767),
        "zlib": True,
        "chunksizes": (6, LAT, LON),
    }
    return [write(monthly(y), folder / f"tas_{y}.nc", tas=packing) for y in (2000, 2001)]


def units_differ(folder: Path) -> list[Path]:
    """tas in K in two files and in degC in the third (another tool wrote that year)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = [write(monthly(y), folder / f"tas_{y}.nc", tas=COMPRESSED) for y in (2000, 2001)]
    celsius = monthly(2002)
    celsius["tas"] = celsius.tas - np.float32(273.15)
    celsius.tas.attrs = {"units": "degC", "standard_name": "air_temperature"}
    return [*out, write(celsius, folder / "tas_2002.nc", tas=COMPRESSED)]


def time_overflow(folder: Path) -> list[Path]:
    """int32 times: seconds since 1990 in one file, days since 2060 in the next; 2060 in
    seconds since 1990 is beyond int32 (it used to wrap around to 1921)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for year, units in ((2000, "seconds since 1990-01-01"), (2060, "days since 2060-01-01")):
        ds = monthly(year)
        edges = ds.time_bnds.values
        ds = ds.assign_coords(time=("time", edges[:, 0], {"bounds": "time_bnds"}))
        encoding = {"units": units, "calendar": "standard", "dtype": "i4"}
        path = folder / f"tas_{year}.nc"
        ds.to_netcdf(path, encoding={"time": encoding, "time_bnds": encoding, "tas": COMPRESSED})
        out.append(path)
    return out


def compound(folder: Path) -> list[Path]:
    """HDF5 compound datasets beside ordinary variables: a record of plain numbers (stored),
    and a record holding a variable-length string (left out with a note)."""
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    stats = np.dtype([("mean", "<f8"), ("count", "<i4"), ("max", "<f4")])
    named = np.dtype([("id", "<i4"), ("name", h5py.string_dtype())])
    for year in (2000, 2001):
        path = write(monthly(year), folder / f"tas_{year}.nc", tas=COMPRESSED)
        with h5py.File(path, "a") as f:
            f.create_dataset("stats", data=np.array([(1.5, 3, 2.5), (2.5, 4, 3.5)], dtype=stats))
            f.create_dataset("named", data=np.array([(1, "tower"), (2, "mast")], dtype=named))
        out.append(path)
    return out


def skipped_filters(folder: Path) -> list[Path]:
    """HDF5 chunks stored without their filters (a per-chunk filter mask), beside chunks that
    went through them: ``pr`` with Blosc, which HDF5 skips on the months of random counts it
    cannot shrink; ``mask``, one such chunk (small: loaded while scanning); ``tas`` deflated,
    one month of which a writer stored raw with ``write_direct_chunk`` (mask 3: shuffle and
    deflate skipped). Written by h5netcdf, so they are netCDF4 files otherwise."""
    import h5py
    import hdf5plugin

    folder.mkdir(parents=True, exist_ok=True)
    blosc = hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)
    out = []
    for year in (2000, 2001):
        rng = np.random.default_rng(year)
        ds = monthly(year)
        counts = np.zeros((12, LAT, LON), dtype="i4")
        counts[3::4] = rng.integers(-(2**31), 2**31 - 1, (3, LAT, LON), dtype="i4")
        ds["pr"] = (("time", "lat", "lon"), counts)
        noise = np.random.default_rng(0).integers(-(2**31), 2**31 - 1, (LAT, LON), dtype="i4")
        ds["mask"] = (("lat", "lon"), noise)  # the same in every file
        encoding = {
            "tas": {"zlib": True, "shuffle": True, "chunksizes": (1, LAT, LON)},
            "pr": {**blosc, "chunksizes": (1, LAT, LON)},
            "mask": {**blosc, "chunksizes": (LAT, LON)},
            "time": {"units": "days since 2000-01-01", "dtype": "f8"},
            "time_bnds": {"units": "days since 2000-01-01", "dtype": "f8"},
        }
        path = folder / f"tas_{year}.nc"
        with warnings.catch_warnings():  # "invalid netcdf features": the filters, on purpose
            warnings.simplefilter("ignore")
            ds.to_netcdf(path, engine="h5netcdf", encoding=encoding, invalid_netcdf=True)
        with h5py.File(path, "a") as f:
            month = np.ascontiguousarray(ds.tas.values[5] + 1, dtype="<f4")
            f["tas"].id.write_direct_chunk((5, 0, 0), month.tobytes(), filter_mask=0b11)
        out.append(path)
    return out


def ocean(var: str, year: int, months: int, seed: int = 0) -> xr.Dataset:
    """A monthly ocean field ``var`` on the test grid, from ``year`` on."""
    ds = monthly(year, months, seed=seed).rename({"tas": var})
    units = {"thetao": "degC", "so": "0.001"}.get(var, "1")
    ds[var].attrs = {"units": units, "long_name": var}
    return ds


def _ocean_file(ds: xr.Dataset, path: Path, time_units: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    time = {"units": time_units, "calendar": "standard", "dtype": "f8"}
    encoding = {"time": time, "time_bnds": dict(time)}
    encoding.update({v: {"zlib": True, "chunksizes": (4, LAT, LON)} for v in ("thetao", "so")})
    encoding = {k: v for k, v in encoding.items() if k in ds.variables}
    for name, enc in encoding.items():  # chunks no longer than the file's own extent
        if "chunksizes" in enc:
            enc["chunksizes"] = tuple(min(c, n) for c, n in zip(enc["chunksizes"], ds[name].shape))
    ds.to_netcdf(path, engine="netcdf4", encoding=encoding)
    return path


def fusion_parts(folder: Path, lat_shift: float = 0.0, start: int = 2000) -> dict[str, list[Path]]:
    """Two parts of one dataset: temperature in two yearly files (days since 2000), and
    salinity beside a second model's temperature, the same 24 months in three files of
    eight (hours since 1990)."""
    temperature = [
        _ocean_file(
            ocean("thetao", y, 12, seed=y),
            folder / "temp" / f"thetao_{y}.nc",
            "days since 2000-01-01",
        )
        for y in (2000, 2001)
    ]
    both = ocean("so", start, 24, seed=7)
    both["thetao"] = ocean("thetao", start, 24, seed=8)["thetao"]
    both = both.assign_coords(lat=both.lat + lat_shift)
    both.lat.attrs["units"] = "degrees_north"
    both.attrs["title"] = "salinity archive"
    salinity = [
        _ocean_file(
            both.isel(time=slice(a, a + 8)),
            folder / "sal" / f"so_{n}.nc",
            "hours since 1990-01-01",
        )
        for n, a in enumerate((0, 8, 16))
    ]
    return {"temperature": temperature, "salinity": salinity}


def levels(folder: Path, depths=((5.0, 15.0), (25.0, 50.0))) -> list[Path]:
    """A static field on the test grid in files of a few depths each (concatenated along
    depth): a part that runs along another dimension than time."""
    folder.mkdir(parents=True, exist_ok=True)
    grid = monthly(2000, 1)
    paths = []
    for n, depth in enumerate(depths):
        values = np.arange(len(depth) * LAT * LON, dtype="f4").reshape(len(depth), LAT, LON)
        ds = xr.Dataset(
            {"kz": (("depth", "lat", "lon"), values + 100 * n, {"units": "m2 s-1"})},
            coords={
                "depth": ("depth", np.array(depth), {"units": "m"}),
                "lat": grid.lat,
                "lon": grid.lon,
            },
        )
        paths.append(folder / f"kz_{n}.nc")
        ds.to_netcdf(paths[-1], engine="netcdf4")
    return paths
