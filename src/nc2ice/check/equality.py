"""Values and attributes compared exactly, as readers see them: dates of either kind,
NaN as NaN, text as text, records field by field, attributes by value and type."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def decode_packed(raw: np.ndarray, attrs: dict[str, Any], dtype: np.dtype) -> np.ndarray:
    """Packed values decoded as xarray decodes them, but in ``dtype``: masked, then scaled."""
    values = raw.astype(dtype)
    for key in ("_FillValue", "missing_value"):
        if key in attrs:
            values[np.isin(raw, np.atleast_1d(attrs[key]))] = np.nan
    if "scale_factor" in attrs:
        values *= float(attrs["scale_factor"])
    if "add_offset" in attrs:
        values += float(attrs["add_offset"])
    return values


def same_attribute(a: Any, b: Any) -> bool:
    """Equal values of the same kind: numbers of the same numpy type, text, lists alike."""
    a, b = _attr(a), _attr(b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if type(a) is not type(b):
        return False
    if isinstance(a, float | np.floating) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str | np.str_):
        return _replaced(str(value))
    if isinstance(value, list | tuple):
        value = np.asarray(value)
    if isinstance(value, np.ndarray) and value.size == 0:
        return ""  # an attribute without values, however a reader gives it
    return value


def _replaced(text: str) -> str:
    """Bytes that are not UTF-8 as netCDF-C and the scan give them (replaced), where
    h5netcdf keeps them as surrogates."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text


def dates_both(a: np.dtype, b: np.dtype) -> bool:
    """One side decoded to numpy dates, the other to cftime dates: a store whose time runs
    past 2262 (or before 1678) decodes to cftime, each of its files within to numpy."""
    return {np.dtype(a).kind, np.dtype(b).kind} == {"M", "O"}


def _as_cftime(dates: np.ndarray, like: np.ndarray) -> np.ndarray:
    """numpy dates as cftime dates of the calendar of ``like``'s (NaT as None)."""
    import cftime

    sample = next((x for x in like.ravel() if isinstance(x, cftime.datetime)), None)
    if sample is None:
        return dates.astype(object)
    micro = dates.astype("datetime64[us]").astype(object)  # datetime.datetime, or None
    out = [
        None
        if d is None
        else cftime.datetime(*d.timetuple()[:6], d.microsecond, calendar=sample.calendar)
        for d in micro.ravel()
    ]
    return np.array(out, dtype=object).reshape(dates.shape)


def equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if dates_both(a.dtype, b.dtype):
        a, b = (_as_cftime(a, b), b) if a.dtype.kind == "M" else (a, _as_cftime(b, a))
        return all(x == y or (_missing(x) and _missing(y)) for x, y in zip(a.ravel(), b.ravel()))
    if a.dtype.names or b.dtype.names:
        return a.dtype.names == b.dtype.names and all(equal(a[n], b[n]) for n in a.dtype.names)
    if a.dtype.kind in "fcmM" and a.dtype == b.dtype:
        return bool(np.array_equal(a, b, equal_nan=True))
    if a.dtype.kind in "SUO" or b.dtype.kind in "SUO":
        return [str(_text(x)) for x in a.ravel()] == [str(_text(x)) for x in b.ravel()]
    return a.dtype == b.dtype and bool(np.array_equal(a, b))


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _text(x: Any) -> Any:
    return x.decode() if isinstance(x, bytes) else x


def first_difference(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shapes {a.shape} and {b.shape}"
    if a.dtype != b.dtype and not (a.dtype.kind in "SUO" or b.dtype.kind in "SUO"):
        return f"dtype {a.dtype} in the store, {b.dtype} in the source"
    flat_a, flat_b = a.ravel(), b.ravel()
    for i in range(flat_a.size):
        if not equal(flat_a[i : i + 1], flat_b[i : i + 1]):
            return f"store {flat_a[i]!r} vs source {flat_b[i]!r} at flat index {i}"
    return "they differ"


def same_number(a: Any, b: Any) -> bool:
    """Attributes that decode numbers: equal values (the width of a number is the store's
    declared business: ``dtype_differences``)."""
    a, b = np.asarray(_attr(a)), np.asarray(_attr(b))
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "SUO" or b.dtype.kind in "SUO":
        return [str(_text(x)) for x in a.ravel()] == [str(_text(x)) for x in b.ravel()]
    return bool(np.array_equal(a.astype("f8"), b.astype("f8"), equal_nan=True))


def masked(values: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    out = values.astype("f8")
    for key in ("_FillValue", "missing_value"):
        if key in attrs:
            out[np.isin(values, np.atleast_1d(attrs[key]).astype(values.dtype))] = np.nan
    return out * float(attrs.get("scale_factor", 1.0)) + float(attrs.get("add_offset", 0.0))
