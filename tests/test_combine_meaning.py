"""Files whose numbers mean different things (issue 14, items 3 and 5): refused, converted
when the config says so (and counted as copies), or re-encoded exactly, never merged blindly."""

from __future__ import annotations

import cftime
import numpy as np
import pytest

from nc2ice.combine.encodings import same_units
from nc2ice.combine.plan import CombineError, combine
from nc2ice.model.manifest import Manifest, Variable

LAT = 3


def _file(i: int, tas_attrs: dict, time=None, tas=None) -> tuple[str, Manifest]:
    """A file of two steps: time (loaded), and tas (loaded and referenced)."""
    units, values, dtype = time or ("days since 2000-01-01", [2.0 * i, 2.0 * i + 1], "<f8")
    time_var = Variable(
        "time", ("time",), (2,), (2,), dtype, {"units": units}, data=np.array(values, dtype)
    )
    data = np.full((2, LAT), 280.0 + i, dtype="<f4") if tas is None else tas
    url = f"file:///archive/f{i}.nc"
    tas_var = Variable(
        "tas",
        ("time", "lat"),
        (2, LAT),
        (1, LAT),
        "<f4",
        dict(tas_attrs),
        compressor={"id": "zlib", "level": 1},
        refs={(0, 0): (url, 10, 5), (1, 0): (url, 15, 5)},
        virtual=True,
        data=data,
    )
    return f"f{i}", Manifest(url, {"time": time_var, "tas": tas_var}, {"": {}})


def test_units_are_compared_as_units_not_as_text():
    assert same_units("K", "kelvin") and same_units("m s-1", "m/s")
    assert same_units("degC", "degree_Celsius") and same_units("kg m-2 s-1", "kg/m2/s")
    assert not same_units("K", "degC") and not same_units("K", None)
    assert same_units("not a unit", " not  a unit ") and not same_units("foo", "bar")


def test_other_units_are_refused_naming_files_and_values():
    files = [_file(0, {"units": "K"}), _file(1, {"units": "K"}), _file(2, {"units": "degC"})]
    with pytest.raises(CombineError) as err:
        combine(files, concat_dim="time")
    message = str(err.value)
    assert "'tas' means different things" in message
    assert "'K' in 2 file(s) (f0, f1)" in message and "'degC' in 1 file(s) (f2)" in message
    assert "convert_units: true" in message


def test_one_unit_spelt_two_ways_is_referenced_as_it_is():
    files = [_file(0, {"units": "K"}), _file(1, {"units": "kelvin"})]
    plan = combine(files, concat_dim="time")
    assert plan.arrays["tas"].data is None and len(plan.arrays["tas"].refs) == 4
    assert plan.report()["copied_bytes"] == 0


def test_converted_units_are_copies_within_the_limit():
    files = [
        _file(0, {"units": "K"}),
        _file(1, {"units": "degC"}, tas=np.full((2, LAT), 7.0, "f4")),
    ]
    with pytest.raises(CombineError, match="max_materialized_fraction"):
        combine(files, concat_dim="time", convert_units=True)
    plan = combine(files, concat_dim="time", convert_units=True, max_materialized_fraction=1.0)
    tas = plan.arrays["tas"]
    assert tas.template.attrs["units"] == "K" and tas.data.dtype == np.float32
    assert tas.data[2:].tolist() == [[np.float32(280.15)] * LAT] * 2  # 7 degC
    report = plan.report()
    assert report["copied_bytes"] == 4 * LAT * 4 and "units" in report["copied_variables"]["tas"]
    assert report["units_converted"] == {"tas": {"f0": "K", "f1": "degC"}}


def test_units_that_cannot_be_converted_are_refused_even_with_convert_units():
    files = [_file(0, {"units": "K"}), _file(1, {"units": "m s-1"})]
    with pytest.raises(CombineError, match="'m s-1' in 1 file"):
        combine(files, concat_dim="time", convert_units=True, max_materialized_fraction=1.0)


def test_other_meanings_are_refused_unless_accepted():
    files = [
        _file(0, {"units": "K", "standard_name": "air_temperature"}),
        _file(1, {"units": "K", "standard_name": "surface_temperature"}),
    ]
    with pytest.raises(CombineError, match="(?s)standard_name.*accept_differences"):
        combine(files, concat_dim="time")
    plan = combine(files, concat_dim="time", accept_differences=["standard_name"])
    assert plan.arrays["tas"].template.attrs["standard_name"] == "air_temperature"
    assert any("standard_name differs between files (accepted)" in n for n in plan.notes)
    assert plan.report()["accepted_differences"] == ["standard_name"]


def test_packing_that_differs_is_counted_as_copied():
    files = [_file(0, {"units": "K", "_FillValue": 1e20}), _file(1, {"units": "K"})]
    with pytest.raises(CombineError, match="max_materialized_fraction"):
        combine(files, concat_dim="time")
    plan = combine(files, concat_dim="time", max_materialized_fraction=1.0)
    assert plan.report()["copied_bytes"] == 4 * LAT * 4


def test_times_re_encoded_beyond_the_first_files_integer_type_become_float64_exactly():
    """int32 seconds since 1990 beside int32 days since 2060: 2060 in seconds since 1990 is
    beyond int32, which used to wrap around silently (2060 read as 1921)."""
    first = _file(0, {"units": "K"}, time=("seconds since 1990-01-01", [0, 3600], "<i4"))
    later = _file(1, {"units": "K"}, time=("days since 2060-01-01", [0, 1], "<i4"))
    plan = combine([first, later], concat_dim="time")
    time = plan.arrays["time"]
    assert time.data.dtype == np.float64
    dates = cftime.num2date(time.data, time.template.attrs["units"], "standard")
    assert [d.year for d in dates] == [1990, 1990, 2060, 2060]
    assert str(dates[3]) == "2060-01-02 00:00:00"


def test_times_that_fit_keep_the_first_files_type():
    first = _file(0, {"units": "K"}, time=("days since 2000-01-01", [0, 1], "<i4"))
    later = _file(1, {"units": "K"}, time=("hours since 2000-01-03", [0, 24], "<i4"))
    time = combine([first, later], concat_dim="time").arrays["time"]
    assert time.data.dtype == np.int32 and time.data.tolist() == [0, 1, 2, 3]


def test_times_that_cannot_be_re_encoded_exactly_are_refused():
    first = _file(0, {"units": "K"}, time=("days since 1850-01-01", [0, 1], "<f8"))
    moment = 1e9 + 0.000003  # microseconds: beyond what float64 days since 1850 can hold
    later = _file(1, {"units": "K"}, time=("seconds since 2000-01-01", [moment, moment + 1], "<f8"))
    with pytest.raises(
        CombineError, match="cannot be re-encoded to 'days since 1850-01-01' exactly"
    ):
        combine([first, later], concat_dim="time")


def test_a_file_without_steps_beside_other_time_units_adds_nothing():
    first = _file(0, {"units": "K"}, time=("days since 2000-01-01", [0, 1], "<f8"))
    empty = _file(1, {"units": "K"}, time=("hours since 2001-01-01", [], "<f8"))
    for var in empty[1].variables.values():
        var.shape = (0, *var.shape[1:])
        var.data = var.data[:0]
        var.refs = var.no_refs()
    plan = combine([first, empty], concat_dim="time")
    assert plan.arrays["time"].data.tolist() == [0, 1]


def test_bounds_of_a_coordinate_that_is_not_time_keep_their_own_attributes():
    """xarray gives only time bounds their coordinate's units: a store that gave lat_bnds
    'degrees_north' would hold an attribute no reader of the files sees."""
    files = []
    for i in range(2):
        fid, m = _file(i, {"units": "K"})
        lat = {"units": "degrees_north", "bounds": "lat_bnds"}
        m.variables["lat"] = Variable(
            "lat", ("lat",), (LAT,), (LAT,), "<f8", lat, data=np.arange(LAT, dtype="f8")
        )
        m.variables["lat_bnds"] = Variable(
            "lat_bnds", ("lat", "bnds"), (LAT, 2), (LAT, 2), "<f8", {},
            data=np.zeros((LAT, 2)),
        )  # fmt: skip
        files.append((fid, m))
    plan = combine(files, concat_dim="time")
    assert "units" not in plan.arrays["lat_bnds"].template.attrs


def test_missing_times_stay_missing_when_times_are_re_encoded():
    """A time-of-maximum variable with fill values, its units differing between files: the
    fill values are not dates (decoding them overflowed), they stay missing."""
    first = _file(0, {"units": "K"}, time=("days since 2000-01-01", [0, 1], "<f8"))
    later = _file(1, {"units": "K"}, time=("hours since 2000-01-03", [0, 24], "<f8"))
    for i, (_, m) in enumerate((first, later)):
        units = m.variables["time"].attrs["units"]
        m.variables["tmax_time"] = Variable(
            "tmax_time", ("time",), (2,), (2,), "<f8", {"units": units, "_FillValue": 1e20},
            data=np.array([1e20, [0.5, 12.0][i]]),
        )  # fmt: skip
    plan = combine([first, later], concat_dim="time", max_materialized_fraction=1.0)
    values = plan.arrays["tmax_time"].data
    assert np.isnan(values[0]) and np.isnan(values[2]) and values[1] == 0.5 and values[3] == 2.5
    assert np.isnan(plan.arrays["tmax_time"].template.attrs["_FillValue"])


def test_calendar_and_unit_spellings_never_refuse():
    assert same_units(None, "1") and same_units("", "1") and same_units("1", "dimensionless")
    assert not same_units("degrees_north", "degrees_east")
    assert same_units("degrees_north", "degree_N") and not same_units("degrees_east", "K")
    first = _file(0, {"units": "K"}, time=("days since 2000-01-01", [0, 1], "<f8"))
    later = _file(1, {"units": "K"}, time=("days since 2000-01-01", [2, 3], "<f8"))
    first[1].variables["time"].attrs["calendar"] = "noleap"
    later[1].variables["time"].attrs["calendar"] = "365_day"
    assert combine([first, later], concat_dim="time").arrays["time"].data.tolist() == [0, 1, 2, 3]
