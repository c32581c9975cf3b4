"""ESM collection catalogs for the tests: CMIP6-style files and the esmcat JSON + CSV that
describe them, as NCI's and ACCESS-NRI's catalogs are written."""

from __future__ import annotations

import json
import zlib
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

MODELS = ("ACCESS-CM2", "ACCESS-ESM1-5", "CESM2")
EXPERIMENTS = ("historical", "ssp585")
VARIABLES = ("tas", "pr")
COLUMNS = [
    "activity_id",
    "institution_id",
    "source_id",
    "experiment_id",
    "member_id",
    "table_id",
    "variable_id",
    "grid_label",
    "version",
    "time_range",
    "path",
]
GROUPBY = ["source_id", "experiment_id", "table_id", "variable_id"]


def cmip6_file(model: str, experiment: str, variable: str, year: int) -> xr.Dataset:
    seed = zlib.crc32(f"{model}/{experiment}/{variable}/{year}".encode())
    rng = np.random.default_rng(seed)
    months = 12
    lat = np.linspace(-80, 80, 9 if model != "CESM2" else 17)
    lon = np.arange(0, 360, 40.0)
    time = pd.date_range(f"{year}-01-16", periods=months, freq="MS") + pd.Timedelta(days=15)
    values = rng.normal(280 if variable == "tas" else 3e-5, 1, (months, lat.size, lon.size))
    units = "K" if variable == "tas" else "kg m-2 s-1"
    ds = xr.Dataset(
        {variable: (("time", "lat", "lon"), values.astype("f4"), {"units": units})},
        coords={
            "time": ("time", time, {"standard_name": "time"}),
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
        attrs={"source_id": model, "experiment_id": experiment, "variable_id": variable},
    )
    ds.time.encoding.update(units="days since 1850-01-01", calendar="standard", dtype="f8")
    return ds


def write_catalog(
    folder: Path,
    years: tuple[int, ...] = (2000, 2001),
    models: tuple[str, ...] = MODELS,
    relative: bool = False,
) -> Path:
    """Files for every model x experiment x variable x year, and ``catalog.json`` with its
    ``catalog.csv`` (paths relative to the catalog's folder when ``relative``)."""
    rows = []
    for model, experiment, variable, year in product(models, EXPERIMENTS, VARIABLES, years):
        name = f"{variable}_Amon_{model}_{experiment}_r1i1p1f1_gn_{year}01-{year}12.nc"
        path = folder / model / experiment / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            cmip6_file(model, experiment, variable, year).to_netcdf(path)
        values = ["CMIP", "CSIRO", model, experiment, "r1i1p1f1", "Amon", variable, "gn"]
        where = str(path.relative_to(folder)) if relative else str(path)
        rows.append([*values, "v20200101", f"{year}01-{year}12", where])
    pd.DataFrame(rows, columns=COLUMNS).to_csv(folder / "catalog.csv", index=False)
    spec = {
        "esmcat_version": "0.1.0",
        "id": "test-cmip6",
        "description": "CMIP6-style test catalog",
        "catalog_file": "catalog.csv",
        "attributes": [{"column_name": c, "vocabulary": ""} for c in COLUMNS[:-1]],
        "assets": {"column_name": "path", "format": "netcdf"},
        "aggregation_control": {
            "variable_column_name": "variable_id",
            "groupby_attrs": GROUPBY,
            "aggregations": [
                {"type": "union", "attribute_name": "variable_id"},
                {
                    "type": "join_existing",
                    "attribute_name": "time_range",
                    "options": {"dim": "time", "coords": "minimal", "compat": "override"},
                },
            ],
        },
    }
    (folder / "catalog.json").write_text(json.dumps(spec, indent=1))
    return folder / "catalog.json"


def add_file(folder: Path, model: str, experiment: str, variable: str, year: int, relative: bool):
    """One more year of a group: its file, and its row at the end of ``catalog.csv``."""
    name = f"{variable}_Amon_{model}_{experiment}_r1i1p1f1_gn_{year}01-{year}12.nc"
    path = folder / model / experiment / name
    cmip6_file(model, experiment, variable, year).to_netcdf(path)
    table = pd.read_csv(folder / "catalog.csv", dtype=str)
    values = ["CMIP", "CSIRO", model, experiment, "r1i1p1f1", "Amon", variable, "gn"]
    where = str(path.relative_to(folder)) if relative else str(path)
    table.loc[len(table)] = [*values, "v20200101", f"{year}01-{year}12", where]
    table.to_csv(folder / "catalog.csv", index=False)
    return path
