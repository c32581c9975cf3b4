"""The validator must catch a store that reads back wrong: here, the naive recipe's time bug."""

from __future__ import annotations

import json
import os

import archives
import pytest
import zarr
from conftest import commit

from nc2ice.access import Access, local_path, normalize_url, prefix_of
from nc2ice.check.compare import validate
from nc2ice.combine.plan import combine
from nc2ice.errors import AccessError
from nc2ice.scan.scanner import scan_file
from nc2ice.store.repository import open_repository
from nc2ice.store.snapshot import checksum_time


def _commit(tmp_path):
    files = archives.time_units(tmp_path / "src")
    access = Access()
    urls = [normalize_url(str(f)) for f in files]
    manifests = [(f.stem, scan_file(u, access, inline_limit=0)) for f, u in zip(files, urls)]
    plan = combine(manifests, concat_dim="time")
    store = normalize_url(str(tmp_path / "store.icechunk"))
    checksums = {u: checksum_time(access.head(u)["last_modified"]) for u in urls}
    snapshot = commit(plan, store, sorted({prefix_of(u) for u in urls}), checksums)
    extents = [
        {"file_id": f.stem, "url": u, "start": 12 * i, "length": 12, "version": access.head(u)}
        for i, (f, u) in enumerate(zip(files, urls))
    ]
    return access, store, _record("t", store, snapshot, extents, plan)


def _record(dataset: str, store: str, snapshot: str, extents: list, plan, **more) -> dict:
    """What commit.json says of a snapshot, as validation reads it."""
    return {
        "dataset": dataset,
        "store": store,
        "snapshot": snapshot,
        "concat_dim": "time",
        "groups": [""],
        "files": extents,
        "report": plan.report(),
        **more,
    }


def test_a_faithful_store_passes(tmp_path):
    access, _, record = _commit(tmp_path)
    result = validate(record, access, sample_chunks=2)
    assert result.passed, result.mismatches
    assert {"tas", "time", "time_bnds", "lat", "lon"} <= set(result.variables_checked)
    json.dumps(result.to_dict(), default=str)


def test_a_source_changed_since_the_commit_is_named(tmp_path):
    access, _, record = _commit(tmp_path)
    changed = record["files"][1]
    path = local_path(changed["url"])
    os.utime(path, (1e9, 1e9))  # rewritten with the same bytes: only Last-Modified tells
    result = validate(record, access, sample_chunks=2)
    assert not result.passed
    assert list(result.changed_sources) == [changed["file_id"]]
    assert "Last-Modified" in result.changed_sources[changed["file_id"]]
    assert [m["file"] for m in result.mismatches] == [changed["file_id"]]
    assert "rescans" in result.mismatches[0]["detail"]


def test_remote_sources_cost_few_requests_and_a_changed_one_is_named(
    http_server, http_root, tmp_path
):
    """Over HTTP a validated file costs its bytes in one request (tied to the version the
    scan recorded) and one for the store's sampled chunk; no HEAD. A file rewritten or gone
    since is named, not compared."""
    files = archives.clean(http_root / "versions", years=(2000, 2001, 2002))
    access = Access()
    urls = [f"{http_server.url}/versions/{f.name}" for f in files]
    manifests = [(f.stem, scan_file(u, access, inline_limit=0)) for f, u in zip(files, urls)]
    plan = combine(manifests, concat_dim="time")
    store = normalize_url(str(tmp_path / "store.icechunk"))
    checksums = {u: m.identity["etag"] for u, (_, m) in zip(urls, manifests)}
    snapshot = commit(plan, store, [prefix_of(urls[0])], checksums)
    record = {
        "dataset": "t",
        "store": store,
        "snapshot": snapshot,
        "concat_dim": "time",
        "groups": [""],
        "files": [
            {"file_id": fid, "url": u, "start": 12 * i, "length": 12, "version": m.identity}
            for i, ((fid, m), u) in enumerate(zip(manifests, urls))
        ],
        "report": plan.report(),
    }
    http_server.reset_counts()
    result = validate(record, access, sample_chunks=1, workers=2)
    assert result.passed, result.mismatches
    assert http_server.requests["HEAD"] == 0
    assert sum(http_server.requests.values()) <= 3 * len(files), http_server.requests
    files[0].write_bytes(files[0].read_bytes() + b"\0")  # another version: a failed verdict
    result = validate(record, access, sample_chunks=1, workers=2)
    assert set(result.changed_sources) == {files[0].stem}
    assert "changed" in result.changed_sources[files[0].stem]
    assert not result.passed
    files[1].unlink()  # unreadable (gone, or a server fault): no verdict, the run stops
    with pytest.raises(AccessError, match="tas_2001.nc: cannot be read to validate it"):
        validate(record, access, sample_chunks=1, workers=2)


def test_first_files_time_units_everywhere_is_caught(tmp_path):
    access, store, record = _commit(tmp_path)
    repo = open_repository(store, access)
    session = repo.writable_session("main")
    group = zarr.open_group(session.store, mode="r+")
    # What plain virtual concatenation does: raw numbers of all files, first file's units.
    group["time"].attrs["units"] = "days since 1930-01-01"
    record["snapshot"] = session.commit("break time")
    result = validate(record, access, sample_chunks=2)
    assert not result.passed
    assert {m["variable"] for m in result.mismatches} == {"time"}
    assert all("values differ" in m["detail"] for m in result.mismatches)


def test_show_prints_the_dataset_and_its_history(tmp_path, capsys):
    from nc2ice.cli import main

    _, store, _ = _commit(tmp_path)
    main(["show", store])
    out = capsys.readouterr().out
    assert "tas" in out and "history of 'main'" in out and "test" in out


def test_chunks_a_file_never_wrote_read_as_netcdf_would(tmp_path):
    """No _FillValue attribute: netCDF-C returns its default fill for unwritten chunks."""
    import netCDF4
    import numpy as np
    import xarray as xr

    files = []
    for i in range(2):
        path = tmp_path / "src" / f"part_{i}.nc"
        path.parent.mkdir(exist_ok=True)
        with netCDF4.Dataset(path, "w") as nc:
            nc.createDimension("time", 4)
            nc.createDimension("x", 3)
            t = nc.createVariable("time", "f8", ("time",))
            t.units = "days since 2000-01-01"
            t[:] = np.arange(4) + 4 * i
            v = nc.createVariable("v", "f4", ("time", "x"), chunksizes=(1, 3), zlib=True)
            v[0] = [1.0, 2.0, 3.0]  # rows 1-3 are never written
        files.append(path)
    access = Access()
    urls = [normalize_url(str(f)) for f in files]
    manifests = [(f.stem, scan_file(u, access, inline_limit=0)) for f, u in zip(files, urls)]
    assert manifests[0][1].variables["v"].storage_fill == np.float32(9.96921e36)
    plan = combine(manifests, concat_dim="time")
    store = normalize_url(str(tmp_path / "store.icechunk"))
    commit(plan, store, [prefix_of(urls[0])])
    from nc2ice.store.open import open_store_dataset

    got = open_store_dataset(store, access).v.values
    want = np.concatenate([xr.open_dataset(f).v.values for f in files])
    np.testing.assert_array_equal(got, want)


def _fused_commit(tmp_path, lat_shift: float = 0.0, tolerance: float = 0.0):
    """A fused dataset (temperature; salinity with a second model's temperature renamed)
    committed as the workflow commits it; its commit record."""
    from nc2ice.combine.fusion import combine_parts

    files = archives.fusion_parts(tmp_path / "src", lat_shift=lat_shift)
    access = Access()
    urls = {f.stem: normalize_url(str(f)) for paths in files.values() for f in paths}
    manifests = {
        part: [(f.stem, scan_file(urls[f.stem], access, inline_limit=0)) for f in paths]
        for part, paths in files.items()
    }
    dataset = {
        "concat_dim": "time",
        "coordinate_tolerance": tolerance,
        "parts": {
            "temperature": {"sources": []},
            "salinity": {"sources": [], "rename": {"thetao": "thetao_model2"}},
        },
    }
    plan = combine_parts(manifests, dataset)
    store = normalize_url(str(tmp_path / "store.icechunk"))
    checksums = {u: checksum_time(access.head(u)["last_modified"]) for u in urls.values()}
    snapshot = commit(plan, store, sorted({prefix_of(u) for u in urls.values()}), checksums)
    where = {p.file_id: (p.offset, p.var.shape[0]) for p in plan.arrays["time"].parts}
    where.update({p.file_id: (p.offset, p.var.shape[0]) for p in plan.arrays["so"].parts})
    part_of = {f: part for part, paths in files.items() for f in (p.stem for p in paths)}
    extents = [
        {
            "file_id": f,
            "url": urls[f],
            "start": where[f][0],
            "length": where[f][1],
            "version": access.head(urls[f]),
            "part": part_of[f],
        }
        for f in plan.files
    ]
    return access, _record("ocean", store, snapshot, extents, plan, fusion=plan.fusion)


def test_a_fused_store_is_compared_part_by_part_under_its_names(tmp_path):
    access, record = _fused_commit(tmp_path)
    result = validate(record, access, sample_chunks=2)
    assert result.passed, result.mismatches
    assert {"thetao", "thetao_model2", "so", "time", "lat"} <= set(result.variables_checked)
    # told the wrong names, the validation sees other values
    record["fusion"]["parts"]["salinity"]["rename"] = {"so": "thetao_model2", "thetao": "so"}
    result = validate(record, access, sample_chunks=2)
    assert {m["variable"] for m in result.mismatches} >= {"so", "thetao_model2"}
    assert any("values differ" in m["detail"] for m in result.mismatches)


def test_a_fused_coordinate_is_compared_within_the_tolerance(tmp_path):
    access, record = _fused_commit(tmp_path, lat_shift=1e-7, tolerance=1e-6)
    assert validate(record, access, sample_chunks=1).passed
    record["fusion"]["tolerance"]["lat"] = 0.0
    result = validate(record, access, sample_chunks=1)
    assert {(m["variable"], m["file"][:2]) for m in result.mismatches} == {("lat", "so")}
    assert "index [0]" in result.mismatches[0]["detail"]
