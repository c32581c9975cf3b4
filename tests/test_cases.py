"""Messy archives (issue 3): each case a dataset, run end to end as local files and over HTTP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import archives
import numpy as np
import pytest
from archives import LAT, LON
from conftest import commit_record, run_workflow, validation

from nc2ice.check.equality import same_attribute
from nc2ice.store.open import open_store_dataset

pytestmark = pytest.mark.e2e

PASSING = {
    "uneven_uncompressed": {},
    "uneven_compressed": {"max_materialized_fraction": 0.5},
    "leap_years": {},
    "beyond_2262": {},
    "time_units": {},
    # decoded to one encoding: copies, counted against the limit
    "packing": {"max_materialized_fraction": 1.0},
    "fill_values": {"max_materialized_fraction": 1.0},
    "empty_file": {},
    "awkward": {"max_materialized_fraction": 0.5},  # its strings are stored as values: copies
    "drift_variables": {"variables": "common"},
    "netcdf3": {},
    "mixed_formats": {"max_materialized_fraction": 0.5},
    "tiny_last_file": {"inline_threshold": 8192},
    "unnamed_dims": {"concat_dim": "phony_dim_0", "concat_order": "listed"},
    "cdf5": {},
    "restarting_counter": {"concat_dim": "time_counter", "concat_order": "listed"},
    "attribute_zoo": {},
    "hdf5_filters": {"max_materialized_fraction": 1.0},
    "packed_float32": {},
    "compound": {},
    "units_differ": {"convert_units": True, "max_materialized_fraction": 1.0},
    "time_overflow": {},
    # the commit copies the variables whose chunks skipped filters; 'mask' is loaded at scan
    "skipped_filters": {"max_materialized_fraction": 1.0, "inline_threshold": 1024},
}


def _sources(folder: Path, base: str | None, http_root: Path | None) -> list[str]:
    files = sorted(folder.iterdir())
    if base is None:
        return [str(f) for f in files]
    target = http_root / "cases" / folder.name
    shutil.copytree(folder, target, dirs_exist_ok=True)
    return [f"{base}/cases/{folder.name}/{f.name}" for f in files]


@pytest.fixture(scope="module", params=["local", "http"])
def messy_run(request, tmp_path_factory):
    """Every case in one run, many datasets to a job (nc2ice.bundles: the step-by-step
    rules run in the other end-to-end tests)."""
    tmp = tmp_path_factory.mktemp(f"cases-{request.param}")
    base = http_root = None
    if request.param == "http":
        server = request.getfixturevalue("http_server")
        base, http_root = server.url, request.getfixturevalue("http_root")
    datasets = {}
    for n, (name, options) in enumerate(PASSING.items()):
        getattr(archives, name)(tmp / "archives" / name)
        datasets[name] = {
            "sources": _sources(tmp / "archives" / name, base, http_root),
            "inline_threshold": 0,
            **options,
        }
        datasets[name]["bundle"] = f"cases-{n % 2}"  # every step of each, in two jobs
    config = {"datasets": datasets, "store": {"root": str(tmp / "stores")}}
    run_workflow(tmp / "run", config)
    return tmp / "run"


@pytest.mark.parametrize("case", list(PASSING))
def test_case_passes_validation(messy_run, case):
    report = validation(messy_run, case)
    assert report["passed"] is True, report["mismatches"]
    assert report["mismatches"] == []


def test_uncompressed_uneven_chunks_copy_nothing(messy_run):
    report = commit_record(messy_run, "uneven_uncompressed")["report"]
    assert report["copied_bytes"] == 0
    assert report["files_split"], "contiguous and 4-month chunks should be split"
    assert report["grids"]["tas"] == [2, LAT, LON]


def test_compressed_uneven_chunks_report_exact_bytes(messy_run):
    report = commit_record(messy_run, "uneven_compressed")["report"]
    assert report["copied_bytes"] == (12 + 3) * LAT * LON * 4
    assert sorted(report["files_copied"]) == ["tas_2002", "tas_2003"]
    assert report["grids"]["tas"] == [6, LAT, LON]
    assert "do not fit" in report["copied_why"]["tas_2002"][0]


def test_leap_years_split_without_copying(messy_run):
    report = commit_record(messy_run, "leap_years")["report"]
    assert report["copied_bytes"] == 0
    assert report["grids"]["pr"][0] == 1


def test_time_units_harmonised(messy_run):
    report = commit_record(messy_run, "time_units")["report"]
    assert any("'time'" in n and "re-encoded" in n for n in report["notes"])
    assert any("'time_bnds'" in n and "re-encoded" in n for n in report["notes"])
    assert "time_bnds" in validation(messy_run, "time_units")["variables_checked"]


def test_packing_differences_are_decoded(messy_run):
    report = commit_record(messy_run, "packing")["report"]
    assert any("'tas'" in n and "decoded" in n for n in report["notes"])


def test_fill_values_that_differ_keep_the_type_netcdf_readers_give(messy_run):
    report = commit_record(messy_run, "fill_values")["report"]
    assert (
        "'tas': packing or fill values differ between files; stored decoded as float32"
        in (report["notes"])
    )
    assert report["dtype_differences"] == {}  # validation checks the type too


def test_an_empty_file_adds_nothing_and_says_so(messy_run):
    record = commit_record(messy_run, "empty_file")
    assert "tas_2002 has no steps along 'time': it adds nothing" in record["report"]["notes"]
    assert [f["length"] for f in record["files"]] == [12, 12, 0]


def test_awkward_variables_and_groups(messy_run):
    record = commit_record(messy_run, "awkward")
    assert "ocean" in record["groups"]
    checked = validation(messy_run, "awkward")["variables_checked"]
    assert {"label", "realization", "height", "ocean/sst"} <= set(checked)
    notes = " ".join(record["report"]["notes"])
    assert "'label'" in notes and "compact layout" in notes


def test_netcdf3_beside_netcdf4_is_copied_and_says_why(messy_run):
    report = commit_record(messy_run, "mixed_formats")["report"]
    assert report["files_copied"] == ["tas_2001"]
    assert report["copied_bytes"] == 12 * LAT * LON * 4
    assert "encoded differently" in report["copied_why"]["tas_2001"][0]


def test_common_variables_drop_the_odd_ones(messy_run):
    dropped = commit_record(messy_run, "drift_variables")["report"]["dropped_variables"]
    assert set(dropped) == {"time_bnds", "huss"}


def _failing(tmp_path, name, **options):
    getattr(archives, name)(tmp_path / name)
    config = {
        "datasets": {
            name: {"sources": [str(tmp_path / name / "*.nc")], "inline_threshold": 0, **options}
        },
        "store": {"root": str(tmp_path / "stores")},
    }
    proc = run_workflow(tmp_path / "run", config, check=False)
    assert proc.returncode != 0
    assert not (tmp_path / "stores" / f"{name}.icechunk").exists()
    return proc.stderr


def test_variable_drift_is_an_error_naming_files(tmp_path):
    err = _failing(tmp_path, "drift_variables")
    assert "do not all hold the same variables" in err
    assert "tas_2001" in err and "time_bnds" in err and "huss" in err
    assert "variables: common" in err


def test_dimension_drift_is_an_error(tmp_path):
    err = _failing(tmp_path, "drift_dimensions")
    assert "dimensions differ" in err and "'lat': 3" in err and "tas_2001" in err


def test_too_much_copying_is_refused(tmp_path):
    err = _failing(tmp_path, "uneven_compressed")
    assert "max_materialized_fraction" in err
    assert "tas_2002: 2304 bytes" in err and "tas_2003: 576 bytes" in err


def test_chunk_mismatch_error_policy(tmp_path):
    err = _failing(tmp_path, "uneven_uncompressed", on_chunk_mismatch="error")
    assert "on_chunk_mismatch is 'error'" in err and "tas_2001" in err


def test_bad_files_skipped(tmp_path, http_server, http_root):
    archives.clean(http_root / "skip", years=(2000, 2001, 2002))
    base = f"{http_server.url}"
    urls = [
        f"{base}/skip/tas_2000.nc",
        f"{base}/fault/html/skip/tas_2001.nc",
        f"{base}/skip/tas_2002.nc",
        f"{base}/skip/missing.nc",
    ]
    config = {
        "datasets": {"skip": {"sources": urls, "on_error": "skip"}},
        "store": {"root": str(tmp_path / "stores")},
    }
    run_workflow(tmp_path / "run", config)
    report = validation(tmp_path / "run", "skip")
    assert report["passed"] is True
    skipped = {s["file_id"]: s["reason"] for s in report["skipped_files"]}
    assert set(skipped) == {"tas_2001", "missing"}
    assert "HTML" in skipped["tas_2001"] and "404" in skipped["missing"]
    table = (tmp_path / "run" / "results" / "skip" / "skipped.tsv").read_text()
    assert "tas_2001" in table and "missing" in table


def test_a_static_variable_that_differs_fails_validation(tmp_path):
    err = _failing_validation(tmp_path, "static_differs")
    assert "orog in tas_2001" in err and "values differ" in err


def _failing_validation(tmp_path, name):
    getattr(archives, name)(tmp_path / name)
    config = {
        "datasets": {name: {"sources": [str(tmp_path / name / "*.nc")], "inline_threshold": 0}},
        "store": {"root": str(tmp_path / "stores")},
    }
    proc = run_workflow(tmp_path / "run", config, check=False)
    assert proc.returncode != 0
    results = tmp_path / "run" / "results" / name
    verdict = json.loads((results / "validation.json").read_text())  # the report shows it
    report = json.loads((results / "validation.failed.json").read_text())
    assert report["passed"] is False and report["mismatches"] and verdict == report
    assert "validation FAILED, so main was not moved" in proc.stderr
    assert not (results / "published.json").exists()
    return proc.stderr


# -- issue 6: defects ------------------------------------------------------------------------


def test_a_tiny_last_file_is_referenced_not_copied(messy_run):
    report = commit_record(messy_run, "tiny_last_file")["report"]
    assert report["copied_bytes"] == 0, report["copied_why"]
    assert report["files_as_is"] == ["tas_2000", "tas_2001"]
    assert "tas" not in report["loaded_arrays"]


def test_unnamed_dimensions_are_named_as_netcdf_readers_name_them(messy_run):
    import h5netcdf

    source = messy_run.parent / "archives" / "unnamed_dims" / "plain_0.h5"
    with h5netcdf.File(source, "r", phony_dims="sort") as f:
        want = {name: v.dimensions for name, v in f.variables.items()}
    store = open_store_dataset(commit_record(messy_run, "unnamed_dims")["store"])
    assert {name: v.dims for name, v in store.variables.items()} == want
    assert want["corr"] == ("phony_dim_0", "phony_dim_1")  # one size used twice
    assert store.sizes["phony_dim_0"] == 8  # two files of 4, concatenated


def test_coordinates_that_restart_in_every_file_are_refused_unless_listed(tmp_path, messy_run):
    values = open_store_dataset(commit_record(messy_run, "restarting_counter")["store"])
    days = (values.time_centered.values - np.datetime64("2000-01-01")) / np.timedelta64(1, "D")
    assert list(days) == [30, 45, 90, 105, 150, 165]
    err = _failing(tmp_path, "restarting_counter", concat_dim="time_counter")
    assert "overlap along 'time_counter'" in err and "concat_order: listed" in err


def test_attributes_round_trip_with_their_types(messy_run):
    import netCDF4

    source = messy_run.parent / "archives" / "attribute_zoo" / "tas_2000.nc"
    store_url = commit_record(messy_run, "attribute_zoo")["store"]
    store = open_store_dataset(store_url)
    with netCDF4.Dataset(source) as nc:
        for got, want in ((store.attrs, nc.__dict__), (store.tas.attrs, nc["tas"].__dict__)):
            for key, value in want.items():
                if key in ("_FillValue", "units"):
                    continue
                assert same_attribute(got[key], value), (key, got[key], value)
                assert type(_scalar(got[key])) is type(_scalar(value)), key
    plain = _plain_open(store_url)  # xr.open_zarr without the package: JSON types
    assert plain.tas.attrs["double"] == 0.1 and plain.tas.attrs["uint64"] == 2**63 + 5
    assert plain.tas.attrs["nan"] == "NaN" and plain.tas.attrs["shorts"] == [1, 2, 3]


def test_filters_zarr_cannot_decode_are_copied_through_h5py(messy_run):
    record = commit_record(messy_run, "hdf5_filters")
    report = record["report"]
    assert report["files_copied"] == ["tas_2000", "tas_2001"]
    assert "LZ4 (32004)" in report["copied_why"]["tas_2000"][0]
    assert "LZF (32000)" in report["copied_variables"]["flag"]
    for meta in _array_metadata(record["store"]).values():
        assert "imagecodecs" not in json.dumps(meta), meta


def test_lz4_beyond_the_copy_limit_is_refused_naming_the_filter(tmp_path):
    err = _failing(tmp_path, "hdf5_filters")
    first = [line for line in err.splitlines() if "max_materialized_fraction" in line][0]
    assert "LZ4 (32004)" in first


def test_packed_float32_dtype_difference_is_declared_and_checked(messy_run):
    declared = commit_record(messy_run, "packed_float32")["report"]["dtype_differences"]
    assert declared["tas"]["netcdf"] == "float32" and declared["tas"]["zarr"] == "float64"
    report = validation(messy_run, "packed_float32")
    assert report["passed"] and report["dtype_differences"]["tas"]["netcdf"] == "float32"


def test_compound_records_of_numbers_are_kept_and_others_left_out(messy_run):
    record = commit_record(messy_run, "compound")
    store = open_store_dataset(record["store"])
    assert store.stats.values["count"].tolist() == [3, 4]
    assert "named" not in store.variables
    assert any("left out 'named'" in n for n in record["report"]["notes"])


def test_units_that_differ_are_refused_unless_converted(tmp_path, messy_run):
    err = _failing(tmp_path, "units_differ")
    assert "'tas' means different things" in err and "'degC' in 1 file(s) (tas_2002)" in err
    record = commit_record(messy_run, "units_differ")
    assert record["report"]["units_converted"]["tas"]["tas_2002"] == "degC"
    assert record["report"]["copied_variables"]["tas"].startswith("its files differ in units")
    store = open_store_dataset(record["store"])
    assert store.tas.attrs["units"] == "K" and float(store.tas[24:].min()) > 200
    assert validation(messy_run, "units_differ")["passed"]


def test_times_re_encoded_beyond_int32_read_back_as_dates(messy_run):
    store = open_store_dataset(commit_record(messy_run, "time_overflow")["store"])
    years = store.time.dt.year.values.tolist()
    assert years == [2000] * 12 + [2060] * 12


def _scalar(value):
    return value.dtype if hasattr(value, "dtype") and getattr(value, "ndim", 0) else value


def _plain_open(store_url: str):
    import icechunk
    import xarray as xr

    storage = icechunk.local_filesystem_storage(store_url.removeprefix("file://"))
    prefixes = icechunk.Repository.open(storage).config.virtual_chunk_containers
    repo = icechunk.Repository.open(
        storage, authorize_virtual_chunk_access={p: None for p in prefixes}
    )
    return xr.open_zarr(repo.readonly_session("main").store, consolidated=False)


def _array_metadata(store_url: str) -> dict:
    import zarr

    from nc2ice.access import Access
    from nc2ice.store.repository import open_repository

    store = open_repository(store_url, Access()).readonly_session("main").store
    group = zarr.open_group(store, mode="r")
    return {name: dict(array.metadata.to_dict()) for name, array in group.arrays()}


# -- issue 14, item 6: chunks stored without their filters ------------------------------------


def test_chunks_without_their_filters_are_copied_and_counted(messy_run):
    report = commit_record(messy_run, "skipped_filters")["report"]
    assert report["files_copied"] == ["tas_2000", "tas_2001"]
    assert report["copied_bytes"] == 2 * 2 * 12 * LAT * LON * 4  # tas and pr, both files
    assert "HDF5 filter mask" in report["copied_why"]["tas_2000"][0]
    assert "mask" in report["loaded_arrays"]  # loaded while scanning, through h5py
    checked = validation(messy_run, "skipped_filters")["variables_checked"]
    assert {"tas", "pr", "mask"} <= set(checked)
