"""Scanning: format sniffing, netCDF3 headers, HDF5 variables that cannot be referenced."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import xarray as xr
from archives import monthly, write

from nc2ice.access import Access, normalize_url
from nc2ice.chunks import read_region
from nc2ice.errors import ScanError
from nc2ice.scan import scan_file, sniff


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
