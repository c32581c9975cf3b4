"""Per-file encodings: what makes the same raw numbers mean different values.

Virtual concatenation keeps the first file's attributes, so two files that store time in
``days since 1930-01-01`` and ``days since 1970-01-01`` would read back wrong without an error.
Here such variables are decoded per file and re-encoded to one reference encoding (time-like
variables), or decoded to plain floats (packing, fill values); variables too large to load
are refused with a message that lists the files and the values that differ.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import cftime
import numpy as np

from nc2ice.errors import CombineError
from nc2ice.model.manifest import Manifest, Variable

ENCODING_ATTRS = ("units", "calendar", "scale_factor", "add_offset", "_FillValue", "missing_value")
TIME_UNITS = re.compile(r"^\s*\w+\s+since\s+", re.IGNORECASE)
MAX_LOAD_BYTES = 64 << 20
# Names of one calendar (CF): spelling never refuses an archive.
_CALENDAR_ALIASES = {
    "gregorian": "standard",
    "": "standard",
    "365_day": "noleap",
    "366_day": "all_leap",
}
# Attributes that change what a number means, besides the packing (decoded above) and the
# time encoding (re-encoded): files that differ in one of them are not concatenated blindly.
MEANING_ATTRS = (
    "units",
    "calendar",
    "standard_name",
    "positive",
    "valid_min",
    "valid_max",
    "valid_range",
    "flag_values",
    "flag_masks",
    "flag_meanings",
    "_Unsigned",
)
# Units UDUNITS takes as one (degrees) but CF as two axes: compared as which axis they name.
_AXIS_UNITS = {
    "degrees_north": "north",
    "degree_north": "north",
    "degree_n": "north",
    "degrees_n": "north",
    "degreen": "north",
    "degreesn": "north",
    "degrees_east": "east",
    "degree_east": "east",
    "degree_e": "east",
    "degrees_e": "east",
    "degreee": "east",
    "degreese": "east",
}
_DIMENSIONLESS = {"", "1", "dimensionless"}


def is_time_like(var: Variable) -> bool:
    return bool(TIME_UNITS.match(str(var.attrs.get("units", ""))))


def calendar(var: Variable) -> str:
    name = str(var.attrs.get("calendar", "standard")).lower()
    return _CALENDAR_ALIASES.get(name, name)


def encoding_key(var: Variable) -> tuple:
    """What must agree for files' raw numbers to mean the same: type, packing, fill, and for
    times their units and calendar (other units are compared as units: ``meaning_differences``)."""
    keys = ENCODING_ATTRS if is_time_like(var) else ENCODING_ATTRS[2:]
    return (var.np_dtype.newbyteorder("=").str,) + tuple(repr(var.attrs.get(k)) for k in keys)


def reader_dtypes(source: Variable, stored: Variable) -> dict[str, str]:
    """What netCDF readers and ``xr.open_zarr`` decode a packed variable to, where they differ.

    xarray picks the float type of a packed variable from the type of ``scale_factor`` and
    ``add_offset``: float32 in a netCDF file, but Zarr attributes are JSON and come back as
    Python floats, so the store decodes to float64.  Zarr 3.1 has no way to say float32 there.
    """
    if is_time_like(source) or not {"scale_factor", "add_offset"} & set(source.attrs):
        return {}
    netcdf = _decoded_dtype(source.np_dtype, source.attrs, source.attr_types)
    zarr = _decoded_dtype(stored.np_dtype, stored.attrs, {})
    if netcdf == zarr:
        return {}
    return {
        "netcdf": netcdf,
        "zarr": zarr,
        "why": f"netCDF readers decode it to {netcdf} because its scale_factor/add_offset are "
        f"{netcdf}; Zarr attributes cannot say {netcdf}, so xr.open_zarr decodes it to {zarr}. "
        f"The values agree to {netcdf} precision: .astype('{netcdf}') gives what netCDF gives "
        "up to the last bit of rounding",
    }


def _decoded_dtype(dtype: np.dtype, attrs: dict[str, Any], types: dict[str, str]) -> str:
    from xarray.coding.variables import _choose_float_dtype

    if dtype.kind not in "iuf" or not {"scale_factor", "add_offset"} & set(attrs):
        return dtype.newbyteorder("=").name
    typed = {
        key: np.dtype(types[key]).type(attrs[key]) if key in types else attrs[key]
        for key in ("scale_factor", "add_offset")
        if key in attrs
    }
    return np.dtype(_choose_float_dtype(dtype, typed)).name


@functools.cache
def _unit(text: str) -> Any:
    """A UDUNITS unit, or None where the text is not one."""
    from cf_units import Unit

    try:
        return Unit(text)
    except ValueError:
        return None


def same_units(a: Any, b: Any) -> bool:
    """Whether two units attributes name one unit (``K`` and ``kelvin``, ``m s-1`` and
    ``m/s``), compared as units where UDUNITS reads both, as text otherwise."""
    a, b = _unitless(a), _unitless(b)
    if a == b:
        return True
    if a is None or b is None:
        return False
    axes = _AXIS_UNITS.get(str(a).strip().lower()), _AXIS_UNITS.get(str(b).strip().lower())
    if any(axes):
        return axes[0] == axes[1]
    ua, ub = _unit(str(a).strip()), _unit(str(b).strip())
    if ua is not None and ub is not None:
        return ua == ub
    return " ".join(str(a).split()) == " ".join(str(b).split())


def _unitless(units: Any) -> Any:
    """No units, empty units and "1" all say dimensionless (CF): one spelling."""
    if units is None or str(units).strip().lower() in _DIMENSIONLESS:
        return "1"
    return units


def convertible(a: Any, b: Any) -> bool:
    """Whether values in units ``a`` can be expressed in units ``b``."""
    ua, ub = _unit(str(a).strip()), _unit(str(b).strip())
    if ua is None or ub is None or ua.is_time_reference():
        return False
    return bool(ua.is_convertible(ub))


def convert_units(values: np.ndarray, source: str, target: str) -> np.ndarray:
    """Values in ``source`` units expressed in ``target`` units, keeping their float type
    (validation converts its direct reads with this same function)."""
    out = _unit(str(source).strip()).convert(np.asarray(values), _unit(str(target).strip()))
    return np.asarray(out).astype(np.asarray(values).dtype, copy=False)


def meaning_differences(
    versions: list[tuple[str, Variable]], accepted: Iterable[str] = ()
) -> dict[str, dict[str, list[str]]]:
    """Per attribute that changes what the numbers mean and differs between files: each
    value (as text) and the files that have it.  Time units and calendars are left out (they
    are re-encoded), and so are the attributes the config accepts as different."""
    skip = set(accepted) | ({"units", "calendar"} if is_time_like(versions[0][1]) else set())
    if not is_time_like(versions[0][1]):
        skip.add("calendar")  # says nothing about numbers that are not times
    found: dict[str, dict[str, list[str]]] = {}
    for key in MEANING_ATTRS:
        if key in skip:
            continue
        groups: dict[str, list[str]] = {}
        kept: list[Any] = []  # one value of each group, to compare the next with
        for file_id, var in versions:
            value = var.attrs.get(key)
            same = next((k for k in kept if _same_meaning(key, k, value)), _UNSEEN)
            if same is _UNSEEN:
                kept.append(value)
                same = value
            groups.setdefault(repr(same), []).append(file_id)
        if len(groups) > 1:
            found[key] = groups
    return found


_UNSEEN = object()


def _same_meaning(key: str, a: Any, b: Any) -> bool:
    if key == "units":
        return same_units(a, b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def describe_differences(path: str, found: dict[str, dict[str, list[str]]]) -> str:
    lines = []
    for key, groups in found.items():
        shown = "; ".join(
            f"{value} in {len(f)} file(s) ({', '.join(f[:3])}{', ...' if len(f) > 3 else ''})"
            for value, f in groups.items()
        )
        lines.append(f"  {key}: {shown}")
    return f"{path!r} means different things in different files:\n" + "\n".join(lines)


def inherit_bounds_units(manifest: Manifest) -> None:
    """Give the bounds of a time coordinate its units and calendar, as CF readers (xarray)
    decode them, so that time bounds encoded differently across files are caught too. Other
    bounds keep their attributes as the file has them (xarray adds nothing to them)."""
    for var in manifest.variables.values():
        bounds = var.attrs.get("bounds")
        if not bounds or not is_time_like(var):
            continue
        target = manifest.variables.get(f"{var.group}/{bounds}".lstrip("/"))
        if target is None:
            continue
        for key in ("units", "calendar"):
            if key in var.attrs and key not in target.attrs:
                target.attrs[key] = var.attrs[key]


def first_value(coord: Variable) -> Any:
    return _value_at(coord, 0)


def last_value(coord: Variable) -> Any:
    return _value_at(coord, -1)


def _value_at(coord: Variable, index: int) -> Any:
    """A coordinate value that sorts across files: decoded for time, as-is otherwise."""
    if coord.data is None or coord.data.size == 0:
        return None
    value = coord.data.reshape(-1)[index].item()
    if is_time_like(coord):
        date = cftime.num2date(
            value, coord.attrs["units"], calendar(coord), only_use_cftime_datetimes=True
        )
        # Dates of different calendars do not compare; their fields do, for ordering files.
        return (*date.timetuple()[:6], date.microsecond)
    return value


def harmonise(
    path: str,
    versions: list[tuple[str, Variable]],
    notes: list[str],
    reader: Callable[[Variable], np.ndarray] | None,
    units: str | None = None,
) -> list[tuple[str, Variable]]:
    """Load the files' values and give them one encoding: times re-encoded to the first
    file's units, anything else decoded as netCDF readers decode it (and, with ``units``,
    converted to those units)."""
    versions = [(fid, copy.copy(var)) for fid, var in versions]
    if not all(var.loaded for _, var in versions):
        total = sum(var.nbytes for _, var in versions)
        if reader is None or total > MAX_LOAD_BYTES:
            raise CombineError(_differences(path, versions) + f"\n{path!r} is too large to load.")
        for _, var in versions:
            if not var.loaded:
                var.data = reader(var)
    if is_time_like(versions[0][1]):
        if not all(is_time_like(var) for _, var in versions):
            odd = next(fid for fid, var in versions if not is_time_like(var))
            raise CombineError(
                f"{path!r} holds times in {versions[0][0]} "
                f"({versions[0][1].attrs.get('units')!r}) but not in {odd} "
                f"({dict(versions)[odd].attrs.get('units')!r})"
            )
        out = _reencode_times(path, versions)
        notes.append(
            f"{path!r}: time units or calendar differ between files; re-encoded to "
            f"{out[0][1].attrs['units']!r} ({out[0][1].attrs.get('calendar', 'standard')})"
        )
        return out
    dtype = np.result_type(*(_netcdf_decoded_dtype(var) for _, var in versions))
    if units is not None:
        dtype = np.result_type(dtype, np.float32)  # a conversion gives fractions
    out = [(fid, _decoded(var, dtype, units)) for fid, var in versions]
    if units is not None:
        notes.append(f"{path!r}: units differ between files; converted to {units!r}, as {dtype}")
    else:
        notes.append(
            f"{path!r}: packing or fill values differ between files; stored decoded as {dtype.name}"
        )
    return out


def _differences(path: str, versions: list[tuple[str, Variable]]) -> str:
    lines = []
    for key in ("dtype", *ENCODING_ATTRS):
        groups: dict[str, list[str]] = defaultdict(list)
        for fid, var in versions:
            value = var.dtype if key == "dtype" else var.attrs.get(key)
            groups[repr(value)].append(fid)
        if len(groups) > 1:
            shown = "; ".join(
                f"{value} in {len(f)} file(s) ({', '.join(f[:3])}{', ...' if len(f) > 3 else ''})"
                for value, f in groups.items()
            )
            lines.append(f"  {key}: {shown}")
    return f"{path!r} is encoded differently across files:\n" + "\n".join(lines)


def _reencode_times(path: str, versions):
    """Each file's times decoded and encoded again in the first file's units; values that
    say "missing" (``_FillValue``, ``missing_value``, NaN) stay missing (NaN)."""
    ref = versions[0][1]
    units, cal = ref.attrs["units"], calendar(ref)
    dates, numbers = [], []
    for fid, var in versions:
        raw = np.asarray(var.data)
        valid = ~_missing_times(raw, var.attrs)
        found = cftime.num2date(
            raw[valid], var.attrs["units"], calendar(var), only_use_cftime_datetimes=True
        )
        if calendar(var) != cal and found.size:
            found = _same_dates_in(
                found,
                cal,
                f"{path!r}: calendar {calendar(var)!r} in {fid} but {cal!r} in {versions[0][0]}",
            )
        values = np.full(raw.shape, np.nan)
        if found.size:
            values[valid] = np.asarray(cftime.date2num(found, units, cal), dtype="f8")
        dates.append(found)
        numbers.append(values)
    dtype = _exact_type(path, versions, dates, numbers, units, cal)
    out = []
    for (fid, var), values in zip(versions, numbers, strict=True):
        var.data = values.astype(dtype)
        var.dtype = dtype.str
        var.refs, var.virtual = var.no_refs(), False  # the stored numbers differ now
        attrs = {k: v for k, v in var.attrs.items() if k not in ("_FillValue", "missing_value")}
        if np.isnan(values).any():  # missing times, as NaN
            attrs["_FillValue"] = float("nan")
        elif "_FillValue" in ref.attrs and dtype == ref.np_dtype.newbyteorder("<"):
            attrs["_FillValue"] = ref.attrs["_FillValue"]
        var.attrs = {**attrs, "units": units, "calendar": ref.attrs.get("calendar", cal)}
        out.append((fid, var))
    return out


def _missing_times(raw: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    missing = np.zeros(raw.shape, dtype=bool)
    for key in ("_FillValue", "missing_value"):
        if key in attrs:
            missing |= np.isin(raw, np.atleast_1d(attrs[key]))
    if raw.dtype.kind == "f":
        missing |= ~np.isfinite(raw)
    return missing


def _exact_type(path, versions, dates, numbers, units: str, cal: str) -> np.dtype:
    """The first file's type if every re-encoded time fits it exactly (float64 where a time
    is missing), else float64; a time that even float64 cannot give back exactly is
    refused, naming its file."""
    ref = versions[0][1].np_dtype.newbyteorder("<")
    for dtype in dict.fromkeys((ref, np.dtype("<f8"))):
        if all(_fits(values, dtype) for values in numbers):
            break
    for (fid, _), found, values in zip(versions, dates, numbers, strict=True):
        valid = values[~np.isnan(values)]
        if not valid.size:
            continue
        back = cftime.num2date(valid.astype(dtype), units, cal, only_use_cftime_datetimes=True)
        wrong = np.nonzero(np.ravel(back) != np.ravel(found))[0]
        if wrong.size:
            i = int(wrong[0])
            raise CombineError(
                f"{path!r}: the times of {fid} cannot be re-encoded to {units!r} exactly "
                f"({np.ravel(found)[i]} would read as {np.ravel(back)[i]}); they differ in "
                f"encoding from {versions[0][0]}, the first file"
            )
    return dtype


def _fits(values: np.ndarray, dtype: np.dtype) -> bool:
    """Whether ``values`` (float64) convert to ``dtype`` without overflow or rounding."""
    if not values.size:
        return True
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        finite = np.isfinite(values).all()
        if not finite or values.min() < info.min or values.max() > info.max:
            return False
    with np.errstate(all="ignore"):
        return bool(np.array_equal(values.astype(dtype).astype("f8"), values, equal_nan=True))


def _same_dates_in(dates: np.ndarray, cal: str, problem: str) -> np.ndarray:
    """The standard and proleptic Gregorian calendars agree after 1582-10-15; others never."""
    gregorian = {"standard", "proleptic_gregorian"}
    flat = np.ravel(dates)
    if cal not in gregorian or flat.size == 0 or dates.flat[0].calendar not in gregorian:
        raise CombineError(problem)
    if min(d.timetuple()[:3] for d in flat) < (1582, 10, 15):
        raise CombineError(problem + " (and dates before 1582-10-15 differ between them)")
    moved = [cftime.datetime(*d.timetuple()[:6], d.microsecond, calendar=cal) for d in flat]
    return np.array(moved, dtype=object).reshape(np.shape(dates))


def _netcdf_decoded_dtype(var: Variable) -> np.dtype:
    """The type netCDF readers (xarray's CF decoding) give this variable: that of its
    packing attributes, else its own type if float or unmasked, else float32 for masked
    small integers and float64 for larger ones."""
    if {"scale_factor", "add_offset"} & set(var.attrs):
        return np.dtype(_decoded_dtype(var.np_dtype, var.attrs, var.attr_types))
    if var.np_dtype.kind == "f" or not {"_FillValue", "missing_value"} & set(var.attrs):
        return var.np_dtype.newbyteorder("=")  # nothing to mask: integers stay integers
    return np.dtype("f4" if var.np_dtype.itemsize <= 2 else "f8")


def _decoded(var: Variable, dtype: np.dtype, units: str | None = None) -> Variable:
    """The values netCDF readers give, computed as xarray computes them (in the file's own
    decoded type, with its typed attributes), then stored as ``dtype`` (and, with ``units``,
    converted to those)."""
    own = _netcdf_decoded_dtype(var)
    raw = np.asarray(var.data)
    values = raw.astype(own)
    for key in ("_FillValue", "missing_value"):
        if key in var.attrs:
            values[np.isin(raw, np.atleast_1d(var.attrs[key]))] = np.nan
    for key, apply in (("scale_factor", np.multiply), ("add_offset", np.add)):
        if key in var.attrs:
            factor = np.dtype(var.attr_types.get(key, own)).type(var.attrs[key])
            values = apply(values, factor, dtype=own)
    attrs = {k: v for k, v in var.attrs.items() if k not in ENCODING_ATTRS[2:]}
    values = values.astype(dtype)
    if units is not None and "units" in var.attrs and not same_units(var.attrs["units"], units):
        values = convert_units(values, var.attrs["units"], units)
    if units is not None:
        attrs["units"] = units
    var.data, var.dtype = values, dtype.newbyteorder("<").str
    var.attrs = {**attrs, "_FillValue": float("nan")} if dtype.kind == "f" else attrs
    var.attr_types = {k: t for k, t in var.attr_types.items() if k in attrs}
    var.filters = var.compressor = None
    var.refs, var.virtual = var.no_refs(), False  # the stored numbers differ now
    return var
