"""A synthetic archive of CMOR-style netCDF4 files, and a loopback server for it.

Each file is one year of monthly means of one variable, as CMIP output is written: `tas`
(time, lat, lon) float32 with one time step per zlib chunk, `time` and `time_bnds`,
`lat`/`lon` and their bounds, CF attributes.  The default grid makes files of about 2 MB.
Archives are cached by their parameters, so repeated benchmarks do not rewrite them.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from servers import HTTPServer  # noqa: E402

CACHE = Path(os.environ.get("NC2ICE_BENCH_CACHE", Path.home() / ".cache" / "nc2ice-bench"))


def archive(
    n: int,
    *,
    months: int = 12,
    lat: int = 180,
    lon: int = 360,
    chunk: int = 1,
    compression: str = "zlib",
) -> list[Path]:
    """The first ``n`` files of an archive (written on first use, then cached)."""
    folder = CACHE / f"cmor-{months}x{lat}x{lon}-c{chunk}-{compression}"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder, i, months, lat, lon, chunk, compression) for i in range(n)]
    with ProcessPoolExecutor() as pool:
        return list(pool.map(_write_one, jobs, chunksize=16))


def _write_one(job: tuple) -> Path:
    import xarray as xr

    folder, i, months, nlat, nlon, chunk, compression = job
    path = folder / f"tas_Amon_BENCH_historical_r1i1p1f1_gn_{1850 + i:04d}01-{1850 + i:04d}12.nc"
    if path.exists():
        return path
    rng = np.random.default_rng(i)
    edges = pd.date_range(f"{1850 + i}-01-01", periods=months + 1, freq="MS")
    lat = np.linspace(-90 + 90 / nlat, 90 - 90 / nlat, nlat)
    lon = np.arange(nlon) * 360 / nlon
    ds = xr.Dataset(
        {
            "tas": (
                ("time", "lat", "lon"),
                rng.normal(280, 10, (months, nlat, nlon)).astype("f4"),
                {"standard_name": "air_temperature", "units": "K", "cell_methods": "time: mean"},
            ),
            "time_bnds": (("time", "bnds"), np.stack([edges[:-1], edges[1:]], axis=1)),
            "lat_bnds": (("lat", "bnds"), np.stack([lat - 90 / nlat, lat + 90 / nlat], axis=1)),
            "lon_bnds": (("lon", "bnds"), np.stack([lon, lon + 360 / nlon], axis=1)),
        },
        coords={
            "time": ("time", edges[:-1] + (edges[1:] - edges[:-1]) / 2, {"bounds": "time_bnds"}),
            "lat": ("lat", lat, {"units": "degrees_north", "bounds": "lat_bnds"}),
            "lon": ("lon", lon, {"units": "degrees_east", "bounds": "lon_bnds"}),
        },
        attrs={"Conventions": "CF-1.7 CMIP-6.2", "source_id": "BENCH", "table_id": "Amon"},
    )
    time = {"units": "days since 1850-01-01", "calendar": "standard", "dtype": "f8"}
    tas = {"chunksizes": (chunk, nlat, nlon)}
    if compression == "zlib":
        tas.update(zlib=True, complevel=1, shuffle=True)
    tmp = path.with_name(f".{path.name}.tmp")
    ds.to_netcdf(tmp, encoding={"tas": tas, "time": time, "time_bnds": time})
    tmp.replace(path)
    return path


def serve(folder: Path, *, delay_ms: float = 0.0, cap: int | None = None) -> HTTPServer:
    """The archive over http://127.0.0.1/ (port 80: Icechunk 1.1 drops other ports)."""
    server = HTTPServer(folder, port=80).start()
    server.delay_s = delay_ms / 1000
    server.cap = cap
    return server
