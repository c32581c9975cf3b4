"""Fused datasets end to end: parts from different servers merged by variable, validated
against direct reads of their sources, and refused (main not moved) where they disagree."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from archives import _ocean_file, fusion_parts, ocean
from catalogs import place_files, write_tree
from conftest import commit_record, run_workflow, validation

from nc2ice.access import Access
from nc2ice.store.open import open_store_dataset
from nc2ice.store.repository import open_repository

pytestmark = pytest.mark.e2e
RENAME = {"thetao": "thetao_model2"}


def _direct(files: list[Path], rename: dict[str, str] | None = None) -> xr.Dataset:
    """A part read directly (netCDF-C), its files concatenated along time."""
    parts = [xr.open_dataset(f).load() for f in sorted(files)]
    ds = xr.concat(
        parts, dim="time", data_vars="minimal", coords="minimal", compat="override", join="override"
    )
    return ds.rename(rename or {})


def _equal_to_sources(store: str, access: Access, parts: dict[str, xr.Dataset], tol=0.0):
    """Every variable of the store equals its part's direct read: the first part's
    coordinates exactly (and the other parts' within the tolerance), every data variable
    exactly, under its store name."""
    ds = open_store_dataset(store, access).load()
    first, *others = parts.values()
    owned = {name: part for part in reversed(parts.values()) for name in part.data_vars}
    for name in ds.variables:
        source = owned[name] if name in owned and name not in first.coords else first
        xr.testing.assert_equal(ds[name].variable, source[name].variable)  # values, dims
    for other in others:
        for name in other.coords:
            if other[name].dtype.kind == "f":
                np.testing.assert_allclose(ds[name].values, other[name].values, rtol=0, atol=tol)
            else:
                np.testing.assert_array_equal(ds[name].values, other[name].values)
    wanted = {n for p in parts.values() for n in p.variables}
    assert set(ds.variables) == wanted
    return ds


def test_http_thredds_and_s3_parts_fused_and_validated(tmp_path, http_server, http_root, s3_server):
    """The temperature part's first year is a plain HTTP URL, its second a THREDDS catalog's
    fileServer URL; the salinity part is in an S3 bucket."""
    files = fusion_parts(tmp_path / "archive")
    served = http_root / "fusion"
    served.mkdir(parents=True, exist_ok=True)
    shutil.copy(files["temperature"][0], served / files["temperature"][0].name)
    tds = place_files(http_root, {2001: files["temperature"][1:]})
    catalog = f"{http_server.url}/fusion/{write_tree(served, tds)}"
    s3 = s3_server.client()
    s3.create_bucket(Bucket="ocean")
    for f in files["salinity"]:
        s3.upload_file(str(f), "ocean", f"salinity/{f.name}")
    config = {
        "datasets": {
            "ocean": {
                "parts": [  # a list: in this order, whatever the YAML writer's
                    {
                        "name": "temperature",
                        "sources": [
                            f"{http_server.url}/fusion/{files['temperature'][0].name}",
                            {"thredds": catalog},
                        ],
                    },
                    {"name": "salinity", "sources": ["s3://ocean/salinity/*.nc"], "rename": RENAME},
                ]
            }
        },
        "store": {"root": str(tmp_path / "stores")},
        "s3": {"endpoint_url": s3_server.endpoint, "force_path_style": True, "region": "us-east-1"},
    }
    run_workflow(tmp_path / "run", config, env=s3_server.env)
    verdict = validation(tmp_path / "run", "ocean")
    assert verdict["passed"] is True, verdict["mismatches"]
    assert {"thetao", "thetao_model2", "so", "time", "lat"} <= set(verdict["variables_checked"])
    assert len(verdict["files_compared"]) == 5
    record = commit_record(tmp_path / "run", "ocean")
    assert [f["part"] for f in record["files"]] == ["temperature"] * 2 + ["salinity"] * 3
    assert (
        record["files"][1]["url"]
        == f"{http_server.url}/thredds/fileServer/cmip/2001/thetao_2001.nc"
    )
    assert record["fusion"]["shared"]["time"] == ["temperature", "salinity"]
    access = Access.from_config(config)
    parts = {
        "temperature": _direct(files["temperature"]),
        "salinity": _direct(files["salinity"], RENAME),
    }
    ds = _equal_to_sources(record["store"], access, parts)
    assert ds.sizes == {"time": 24, "lat": 6, "lon": 8, "bnds": 2}
    assert ds.attrs["title"] == "test archive"  # the first part's global attributes
    again = run_workflow(tmp_path / "run", config, env=s3_server.env)
    assert "ocean: nothing changed" in again.stderr and "rule commit" not in again.stderr


def _main(record: dict) -> str:
    return open_repository(record["store"], Access()).lookup_branch("main")


def _failed(proc, *words: str) -> None:
    assert proc.returncode != 0
    line = next((x for x in proc.stderr.splitlines() if "differs between" in x), proc.stderr)
    for word in words:
        assert word in line, proc.stderr[-3000:]


def test_local_parts_rerun_refused_where_they_disagree(tmp_path):
    archive = tmp_path / "archive"
    files = fusion_parts(archive)
    config = {
        "datasets": {
            "ocean": {
                "parts": {
                    "temperature": {"sources": [str(archive / "temp" / "*.nc")]},
                    "salinity": {"sources": [str(archive / "sal" / "*.nc")], "rename": RENAME},
                },
            }
        },
        "store": {"root": str(tmp_path / "stores")},
    }
    run = tmp_path / "run"
    run_workflow(run, config)
    assert validation(run, "ocean")["passed"] is True
    record = commit_record(run, "ocean")
    # the test writes its YAML with sorted keys: salinity is the first part, whose
    # coordinates the store keeps
    assert list(record["fusion"]["parts"]) == ["salinity", "temperature"]
    published = _main(record)

    # A new year in one part only: the parts no longer cover the same times. Refused.
    new = ocean("thetao", 2002, 12, seed=2002)
    extra = _ocean_file(new, archive / "temp" / "thetao_2002.nc", "days since 2000-01-01")
    proc = run_workflow(run, config, check=False)
    _failed(proc, "coordinate 'time'", "'temperature'", "'salinity'")
    assert _main(record) == published

    # The same year in the other part too: fused again, and validated.
    year = ocean("so", 2002, 12, seed=9)
    year["thetao"] = ocean("thetao", 2002, 12, seed=10)["thetao"]
    year.attrs["title"] = "salinity archive"
    so_2002 = _ocean_file(year, archive / "sal" / "so_3.nc", "hours since 1990-01-01")
    run_workflow(run, config)
    assert validation(run, "ocean")["passed"] is True
    assert _main(record) != published
    temperature = _direct([*files["temperature"], extra])
    salinity = _direct([*files["salinity"], so_2002], RENAME)
    parts = {"salinity": salinity, "temperature": temperature}
    assert _equal_to_sources(record["store"], Access(), parts).sizes["time"] == 36
    published = _main(record)

    # Salinity's grid moved by 1e-7 degrees: refused, unless within the tolerance.
    for f in [*files["salinity"], so_2002]:
        with xr.open_dataset(f) as ds:
            shifted = ds.load()
        shifted = shifted.assign_coords(lat=shifted.lat + 1e-7)
        f.unlink()
        _ocean_file(shifted, f, "hours since 1990-01-01")
    proc = run_workflow(run, config, check=False)
    _failed(proc, "coordinate 'lat'", "'temperature'", "'salinity'", "index [0]")
    assert _main(record) == published
    config["datasets"]["ocean"]["coordinate_tolerance"] = {"lat": 1e-6}
    run_workflow(run, config)
    assert validation(run, "ocean")["passed"] is True
    salinity = _direct([*files["salinity"], so_2002], RENAME)
    parts = {"salinity": salinity, "temperature": temperature}
    _equal_to_sources(record["store"], Access(), parts, tol=1e-6)
    published = _main(record)

    # Half a degree is beyond it: refused naming where, and main stays where it was.
    for f in [*files["salinity"], so_2002]:
        with xr.open_dataset(f) as ds:
            shifted = ds.load()
        shifted = shifted.assign_coords(lat=shifted.lat + 0.5)
        f.unlink()
        _ocean_file(shifted, f, "hours since 1990-01-01")
    proc = run_workflow(run, config, check=False)
    _failed(proc, "coordinate 'lat'", "-75.0", "-74.4999", "index [0]", "'temperature'")
    assert _main(record) == published
