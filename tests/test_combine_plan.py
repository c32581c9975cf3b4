"""Combining manifests: ordering, drift messages, encoding harmonisation."""

from __future__ import annotations

import numpy as np
import pytest

from nc2ice.combine.plan import CombineError, combine
from nc2ice.model.manifest import Manifest, Variable


def _file(
    i: int,
    start: float,
    units="days since 2000-01-01",
    calendar="standard",
    extra: dict | None = None,
    lat: int = 3,
) -> tuple[str, Manifest]:
    time = Variable(
        "time",
        ("time",),
        (2,),
        (2,),
        "<f8",
        {"units": units, "calendar": calendar, "bounds": "time_bnds"},
        data=np.array([start, start + 1.0]),
    )
    bnds = Variable(
        "time_bnds",
        ("time", "bnds"),
        (2, 2),
        (2, 2),
        "<f8",
        {},
        data=np.array([[start, start + 1], [start + 1, start + 2]]),
    )
    tas = Variable(
        "tas",
        ("time", "lat"),
        (2, lat),
        (1, lat),
        "<f4",
        {"units": "K"},
        compressor={"id": "zlib", "level": 1},
        refs={(0, 0): (f"file:///f{i}.nc", 10, 5), (1, 0): (f"file:///f{i}.nc", 15, 5)},
        virtual=True,
    )
    variables = {"time": time, "time_bnds": bnds, "tas": tas, **(extra or {})}
    return f"f{i}", Manifest(f"file:///f{i}.nc", variables, {"": {}})


def test_files_are_ordered_by_decoded_time_not_by_name():
    files = [_file(0, 10.0), _file(1, 0.0, units="days since 2000-01-21")]  # f1: day 20
    plan = combine(files, concat_dim="time")
    assert plan.files == ["f0", "f1"]
    files = [_file(0, 10.0), _file(1, 0.0)]
    assert combine(files, concat_dim="time").files == ["f1", "f0"]


def test_time_and_bounds_reencoded_to_the_first_files_units():
    hourly = _file(1, 0.0, units="hours since 2000-01-01")
    hourly[1].variables["time"].data = np.array([48.0, 72.0])
    hourly[1].variables["time_bnds"].data = np.array([[48.0, 72.0], [72.0, 96.0]])
    plan = combine([_file(0, 0.0), hourly], concat_dim="time")
    np.testing.assert_array_equal(plan.arrays["time"].data, [0, 1, 2, 3])
    np.testing.assert_array_equal(plan.arrays["time_bnds"].data[:, 0], [0, 1, 2, 3])
    assert plan.arrays["time_bnds"].template.attrs["units"] == "days since 2000-01-01"
    assert plan.arrays["tas"].refs[(3, 0)] == ("file:///f1.nc", 15, 5)


def test_incompatible_calendars_are_refused():
    with pytest.raises(CombineError, match="calendar 'noleap'"):
        combine([_file(0, 0.0), _file(1, 2.0, calendar="noleap")], concat_dim="time")


def test_same_start_is_refused():
    with pytest.raises(CombineError, match="overlap"):
        combine([_file(0, 0.0), _file(1, 0.0)], concat_dim="time")


def test_drift_in_a_thousand_files_gives_a_short_message():
    extra = {"pr": Variable("pr", ("time",), (2,), (2,), "<f4", {}, data=np.zeros(2))}
    files = [_file(i, 2.0 * i, extra=extra if i % 10 else None) for i in range(1000)]
    with pytest.raises(CombineError) as err:
        combine(files, concat_dim="time")
    message = str(err.value)
    assert "100 file(s) lack ['pr']: f0, f10, f20 and 97 more" in message
    assert len(message.splitlines()) < 8


def test_dimension_drift_is_reported():
    with pytest.raises(CombineError, match="dimensions differ"):
        combine([_file(0, 0.0), _file(1, 2.0, lat=4)], concat_dim="time")


def test_virtual_variables_with_different_packing_are_loaded_or_refused():
    a, b = _file(0, 0.0), _file(1, 2.0)
    b[1].variables["tas"].attrs["scale_factor"] = 2.0
    with pytest.raises(CombineError, match="scale_factor: None in 1 file.*2.0 in 1 file"):
        combine([a, b], concat_dim="time")
    ones = lambda var: np.ones(var.shape, dtype=var.dtype)  # noqa: E731
    with pytest.raises(CombineError, match="max_materialized_fraction"):  # decoded: copies
        combine([a, b], concat_dim="time", reader=ones)
    plan = combine([a, b], concat_dim="time", reader=ones, max_materialized_fraction=1.0)
    np.testing.assert_array_equal(plan.arrays["tas"].data[:, 0], [1, 1, 2, 2])
    assert plan.report()["copied_bytes"] == plan.arrays["tas"].data.nbytes


def test_overlapping_files_are_refused():
    with pytest.raises(CombineError, match="overlap along 'time'.*2000-01-02"):
        combine([_file(0, 0.0), _file(1, 1.0)], concat_dim="time")


def test_a_variable_whose_dimensions_change_is_drift():
    a, b = _file(0, 0.0), _file(1, 2.0)
    b[1].variables["tas"].dims = ("time", "lon")
    with pytest.raises(CombineError, match=r"(?s)dimensions differ.*dims of tas"):
        combine([a, b], concat_dim="time")


@pytest.mark.parametrize(
    ("dtype", "attrs", "attr_types"),
    [
        ("<f4", {"_FillValue": 1e20}, {"_FillValue": "float32"}),
        ("<i2", {"scale_factor": 0.01, "add_offset": 280.0}, {"scale_factor": "float32"}),
        ("<i2", {"scale_factor": 0.01, "_FillValue": -32767}, {}),
        ("<i2", {"_FillValue": -1}, {}),
        ("<i4", {"missing_value": -1}, {}),
        ("|u1", {}, {}),
    ],
)
def test_values_are_decoded_as_xarray_decodes_them(dtype, attrs, attr_types):
    """What the store holds where encodings differ between files: xarray's values, bit for
    bit, in the type xarray gives (float32 stays float32)."""
    import xarray as xr

    from nc2ice.combine.encodings import _decoded, _netcdf_decoded_dtype

    raw = np.array([[-32767, -1, 0, 7], [100, 250, 3, -1]]).astype(dtype)
    typed = {k: np.dtype(attr_types[k]).type(v) if k in attr_types else v for k, v in attrs.items()}
    want = xr.decode_cf(xr.Dataset({"v": (("y", "x"), raw, typed)}))["v"].values
    var = Variable(
        path="v",
        dims=("y", "x"),
        shape=raw.shape,
        chunks=raw.shape,
        dtype=dtype,
        attrs=dict(attrs),
        attr_types=dict(attr_types),
    )
    var.data = raw
    got = _decoded(var, _netcdf_decoded_dtype(var)).data
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_files_are_ordered_by_time_even_beside_an_empty_one():
    def file(i: int, steps: list[float]) -> tuple[str, Manifest]:
        time = Variable(
            "time",
            ("time",),
            (len(steps),),
            (max(1, len(steps)),),
            "<f8",
            {"units": "days since 2000-01-01"},
            data=np.array(steps),
        )
        return f"f{i}", Manifest(f"file:///f{i}.nc", {"time": time}, {"": {}})

    plan = combine([file(0, [5.0, 6.0]), file(1, []), file(2, [1.0, 2.0])], concat_dim="time")
    assert plan.files == ["f2", "f0", "f1"]


def test_files_without_coordinate_values_are_taken_in_listed_order_and_it_says_so():
    def file(i: int) -> tuple[str, Manifest]:
        tas = Variable("tas", ("time",), (2,), (2,), "<f4", {}, data=np.array([i, i], "f4"))
        return f"f{i}", Manifest(f"file:///f{i}.nc", {"tas": tas}, {"": {}})

    plan = combine([file(1), file(0)], concat_dim="time", max_materialized_fraction=1.0)
    assert plan.files == ["f1", "f0"]
    assert plan.report()["copied_bytes"] == 16  # values only: copies, counted
    assert any("no 'time' coordinate values" in n and "order listed" in n for n in plan.notes)
