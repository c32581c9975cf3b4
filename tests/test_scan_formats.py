"""Scanning: format sniffing, netCDF3 headers, HDF5 variables that cannot be referenced."""

from __future__ import annotations

import archives
import h5py
import numpy as np
import pytest
import xarray as xr
from archives import LAT, LON, monthly, write
from conftest import commit

from nc2ice.access import Access, normalize_url, prefix_of
from nc2ice.combine.plan import combine
from nc2ice.errors import ScanError
from nc2ice.model.chunks import read_region
from nc2ice.scan.scanner import scan_file, sniff
from nc2ice.store.open import open_store_dataset


def _scan(path, limit=0):
    return scan_file(normalize_url(str(path)), Access(), inline_limit=limit)


def _values(var):
    return read_region(var, tuple(slice(0, n) for n in var.shape), Access())


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"", "empty"),
        (b"<!DOCTYPE html><html>", "HTML"),
        (b"CDF\x07", "version"),
        (b"PK\x03\x04zip", "not a netCDF or HDF5 file"),
    ],
)
def test_sniff_says_what_it_found(head, message):
    with pytest.raises(ScanError, match=message):
        sniff(head)


def test_sniff_knows_the_formats():
    assert sniff(b"\x89HDF\r\n\x1a\n") == "hdf5"
    assert sniff(b"CDF\x01") == sniff(b"CDF\x02") == sniff(b"CDF\x05") == "netcdf3"


@pytest.mark.parametrize("fmt", ["NETCDF3_CLASSIC", "NETCDF3_64BIT", "NETCDF3_64BIT_DATA"])
def test_netcdf3_records_and_padding(tmp_path, fmt):
    ds = monthly(2000)
    ds["code"] = (("time",), np.arange(12, dtype="i2"), {"flag_values": [1, 2], "note": "odd"})
    ds["mask"] = (("lat", "lon"), np.ones((6, 8), dtype="i1"))
    path = tmp_path / "a.nc"
    engine = "netcdf4" if fmt.endswith("DATA") else "scipy"
    ds.to_netcdf(
        path,
        format=fmt,
        engine=engine,
        unlimited_dims=["time"],
        encoding={
            "time": {"units": "days since 2000-01-01", "dtype": "f8"},
            "time_bnds": {"units": "days since 2000-01-01", "dtype": "f8"},
        },
    )
    manifest = _scan(path)
    raw = xr.open_dataset(path, decode_cf=False, mask_and_scale=False)
    for name, var in manifest.variables.items():
        np.testing.assert_array_equal(_values(var), raw[name].values, err_msg=name)
        assert var.dims == raw[name].dims
    assert manifest.variables["tas"].chunks == (1, 6, 8)
    assert manifest.variables["code"].attrs == {"flag_values": [1, 2], "note": "odd"}


def test_truncated_netcdf3_names_the_variable(tmp_path):
    path = write(monthly(2000), tmp_path / "a.nc", fmt="NETCDF3_CLASSIC")
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(ScanError, match=r"a\.nc: .*truncated"):
        _scan(path)


def test_truncated_hdf5_is_a_scan_error(tmp_path):
    path = write(monthly(2000), tmp_path / "a.nc")
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ScanError, match=r"a\.nc"):
        _scan(path)


def test_hdf5_awkward_variables(tmp_path):
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as f:
        f["names"] = np.array(["a", "bb", "ccc"], dtype=h5py.string_dtype())
        f.create_dataset("big_names", data=np.array(["x" * 10] * 10, dtype=h5py.string_dtype()))
        f["scalar"] = 3.5
        f.create_dataset("plain", data=np.arange(100.0), chunks=(10,))
        g = f.create_group("inner")
        g.create_dataset("deep", data=np.arange(6, dtype="i4").reshape(2, 3))
    manifest = _scan(path)
    assert list(manifest.variables["names"].data) == ["a", "bb", "ccc"]
    assert manifest.variables["scalar"].data == 3.5
    assert len(manifest.variables["plain"].refs) == 10
    assert "inner/deep" in manifest.variables and "inner" in manifest.group_attrs
    np.testing.assert_array_equal(_values(manifest.variables["plain"]), np.arange(100.0))
    assert any("names" in n and "cannot be referenced" in n for n in manifest.notes)


# -- issue 14, item 6: chunks stored without their filters (the HDF5 filter mask) ----------


def _commit_one(manifests, tmp_path, access):
    plan = combine(
        manifests,
        concat_dim="time",
        max_materialized_fraction=1.0,
        reader=lambda var: read_region(var, tuple(slice(0, n) for n in var.shape), access),
    )
    store = normalize_url(str(tmp_path / "store.icechunk"))
    snapshot = commit(plan, store, [prefix_of(manifests[0][1].url)])
    return plan, open_store_dataset(store, snapshot=snapshot)


@pytest.mark.parametrize("inline_limit", [0, 1 << 20], ids=["copied", "loaded"])
def test_chunks_stored_without_their_filters_read_back_equal(tmp_path, inline_limit):
    files = archives.skipped_filters(tmp_path / "src")
    access = Access()
    manifests = [(f.stem, _scan(f, inline_limit)) for f in files]
    for _, manifest in manifests:
        for name in ("tas", "pr", "mask"):
            var = manifest.variables[name]
            assert "stored without their filters (HDF5 filter mask)" in var.undecodable, name
            assert not var.referenceable and var.loaded == (inline_limit > 0)
        assert any("'pr'" in n and "3 of its 12 chunks" in n for n in manifest.notes)
    plan, store = _commit_one(manifests, tmp_path, access)
    with h5py.File(files[0]) as a, h5py.File(files[1]) as b:
        for name in ("tas", "pr"):
            want = np.concatenate([a[name][()], b[name][()]])
            np.testing.assert_array_equal(store[name].values, want, err_msg=name)
        np.testing.assert_array_equal(store["mask"].values, a["mask"][()])
    report = plan.report()
    if inline_limit == 0:  # copied through h5py by the commit, and counted
        assert report["copied_bytes"] == 2 * 2 * (12 * LAT * LON * 4) + LAT * LON * 4
        assert "filter mask" in report["copied_why"]["tas_2000"][0]
        assert "filter mask" in report["copied_variables"]["mask"]


def _kerchunk_files(folder):
    """Kerchunk's test files for skipped filters (tests/gen_mini_hdf5.py there)."""
    import hdf5plugin

    folder.mkdir()
    with h5py.File(folder / "mali_chunk.h5", "w") as f:
        ds = f.create_dataset("data", (8,), dtype="i4", chunks=(7,), **hdf5plugin.Zstd())
        ds[0:7] = np.arange(7, dtype="i4")
        ds.id.write_direct_chunk((7,), np.array([7] + [0] * 6, dtype="i4").tobytes(), 1)
    with h5py.File(folder / "mali_chunk2.h5", "w") as f:
        kw = {"chunks": (3,), "shuffle": True, **hdf5plugin.Zstd()}
        ds = f.create_dataset("data", (8,), dtype="i4", **kw)
        shuffled = np.arange(3, dtype="i4").view("u1").reshape(3, 4).T.tobytes()
        ds.id.write_direct_chunk((0,), shuffled, 2)  # shuffled, Zstd skipped
        ds.id.write_direct_chunk((3,), np.array([3, 4, 5], dtype="i4").tobytes(), 3)
        ds[6:] = np.array([6, 7], dtype="i4")
    for name, codec in (("zstd", hdf5plugin.Zstd()), ("blosc", hdf5plugin.Blosc())):
        with h5py.File(folder / f"mini_{name}.h5", "w") as f:
            f.create_dataset("data", data=np.arange(6, dtype="i4").reshape(3, 2), **codec)
    return sorted(folder.iterdir())


@pytest.mark.parametrize("inline_limit", [0, 1 << 20], ids=["copied", "loaded"])
def test_kerchunk_files_with_skipped_filters_read_back_equal(tmp_path, inline_limit):
    access = Access()
    for i, path in enumerate(_kerchunk_files(tmp_path / "src")):
        manifest = _scan(path, inline_limit)  # decoding with the codecs crashed here
        var = manifest.variables["data"]
        with h5py.File(path) as f:
            want, masked = (
                f["data"][()],
                any(
                    f["data"].id.get_chunk_info(j).filter_mask
                    for j in range(f["data"].id.get_num_chunks())
                ),
            )
        assert var.referenceable is not masked, path.name
        np.testing.assert_array_equal(_values(var), want, err_msg=path.name)
        _, store = _commit_one([(path.stem, manifest)], tmp_path / str(i), access)
        np.testing.assert_array_equal(store["data"].values, want, err_msg=path.name)


@pytest.mark.parametrize("userblock", [512, 8192, 65536])
def test_hdf5_files_behind_a_user_block_of_any_size_are_scanned(tmp_path, userblock):
    path = tmp_path / "ub.h5"
    with h5py.File(path, "w", userblock_size=userblock) as f:
        f.create_dataset("x", data=np.arange(6.0), chunks=(3,))
    with path.open("r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file"[: min(19, userblock)])
    manifest = scan_file(normalize_url(str(path)), Access(), inline_limit=0)
    assert manifest.variables["x"].shape == (6,) and len(manifest.variables["x"].refs) == 2
