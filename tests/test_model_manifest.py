from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from archives import COMPRESSED, monthly, write

from nc2ice.access import Access, normalize_url
from nc2ice.model.manifest import (
    Manifest,
    Variable,
    from_kerchunk,
    read_manifest,
    to_kerchunk,
    write_manifest,
)
from nc2ice.scan.scanner import scan_file


def test_round_trip_keeps_refs_inline_values_and_attributes():
    refs = {(0, 0): ("s3://b/f.nc", 100, 50), (1, 0): ("s3://b/f.nc", 150, 60)}
    manifest = Manifest(
        url="s3://b/f.nc",
        variables={
            "tas": Variable(
                "tas",
                ("time", "x"),
                (4, 3),
                (2, 3),
                ">f4",
                {"_FillValue": float("nan"), "units": "K", "valid_range": [0.0, 400.0]},
                filters=[{"id": "shuffle", "elementsize": 4}],
                compressor={"id": "zlib", "level": 4},
                refs=refs,
                virtual=True,
            ),
            "ocean/label": Variable(
                "ocean/label", ("time",), (2,), (2,), "<U5", {}, data=np.array(["ab", "cdefg"])
            ),
            "height": Variable("height", (), (), (), "<f8", {"units": "m"}, data=np.array(2.0)),
        },
        group_attrs={"": {"title": "t"}, "ocean": {"realm": "ocean"}},
        notes=["loaded 'ocean/label'"],
    )
    back = from_kerchunk(json.loads(json.dumps(to_kerchunk(manifest))))
    assert back.url == manifest.url and back.notes == manifest.notes
    assert back.group_attrs == manifest.group_attrs
    tas = back.variables["tas"]
    assert tas.refs == refs and tas.dtype == ">f4" and tas.chunks == (2, 3)
    assert np.isnan(tas.attrs["_FillValue"]) and tas.attrs["valid_range"] == [0.0, 400.0]
    assert tas.filters == [{"id": "shuffle", "elementsize": 4}]
    np.testing.assert_array_equal(back.variables["ocean/label"].data, ["ab", "cdefg"])
    assert back.variables["height"].data == 2.0


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_CLASSIC", "NETCDF3_64BIT"])
def test_a_manifest_opens_on_its_own_with_the_kerchunk_engine(tmp_path, fmt):
    src = write(
        monthly(2000), tmp_path / "a.nc", fmt=fmt, tas=COMPRESSED if fmt == "NETCDF4" else None
    )
    write_manifest(
        scan_file(normalize_url(str(src)), Access(), inline_limit=0), tmp_path / "a.json"
    )
    manifest = read_manifest(tmp_path / "a.json")
    assert manifest.variables["tas"].refs and not manifest.variables["tas"].loaded
    assert manifest.variables["time"].loaded and manifest.variables["time_bnds"].loaded
    xr.testing.assert_identical(
        xr.open_dataset(str(tmp_path / "a.json"), engine="kerchunk").load(),
        xr.open_dataset(src).load(),
    )
