"""Reopen a store as a reader would and compare it with direct reads of the sources.

The store is opened from its URL alone (the containers it records, anonymous or environment
credentials), and each source file by netCDF-C, the reference reader, on its own path (local
files, HTTP byte ranges), so a mistake in scanning, combining or writing shows up as a
mismatch here.  Values, dtypes and attributes are compared exactly: where a store cannot
give what netCDF readers give (a packed float32 variable decodes to float64 from Zarr), the
commit declares it, and the values are compared decoded in the store's type.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hdf5plugin
import numpy as np
import xarray as xr

from nc2ice.access import Access, local_path
from nc2ice.encoding import MEANING_ATTRS, convert_units, same_units
from nc2ice.faults import pause
from nc2ice.logs import Progress
from nc2ice.reading import open_store_dataset

# netCDF-C finds HDF5 filters (LZ4, Zstd, ...) through this path, as h5py does through hdf5plugin.
os.environ.setdefault("HDF5_PLUGIN_PATH", hdf5plugin.PLUGIN_PATH)

log = logging.getLogger(__name__)
FULL_COMPARE_BYTES = 8 << 20
# Attributes that netCDF readers turn into decoding (xarray moves them to .encoding).
DECODING_ATTRS = {"_FillValue", "missing_value", "scale_factor", "add_offset", "units", "calendar"}


@dataclass
class Validation:
    dataset: str
    store: str
    snapshot: str = ""
    variables_checked: list[str] = field(default_factory=list)
    chunks_checked: int = 0
    values_compared: int = 0
    attributes_compared: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    dtype_differences: dict[str, dict[str, str]] = field(default_factory=dict)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    changed_sources: dict[str, str] = field(default_factory=dict)
    not_in_store: dict[str, str] = field(default_factory=dict)
    what_commit_did: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.mismatches and bool(self.variables_checked)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, **self.__dict__}


def open_source(
    url: str,
    access: Access,
    stack: ExitStack,
    group: str | None = None,
    netcdf_c: bool = True,
    **kw: Any,
) -> xr.Dataset:
    """A source file opened by a reader independent of the scanner: netCDF-C, the reference,
    for local files and remote netCDF3 (HTTP byte ranges; S3 objects, whose requests
    netCDF-C cannot sign, through a temporary copy), and h5netcdf for remote HDF5 over the
    configured obstore client (large blocks: a few requests per file; unnamed dimensions
    named as netCDF-C names them).  ``netcdf_c=False`` reads local HDF5 by h5netcdf too:
    h5py has filters (LZF) that netCDF-C lacks."""
    if url.startswith("file://") and netcdf_c:
        return _open(stack, local_path(url), "netcdf4", group, **kw)
    reader = access.reader(url, head_bytes=4 << 20, block_bytes=4 << 20)  # pinned: validate()
    if reader.read(4)[:3] != b"CDF":
        reader.seek(0)
        return _open(stack, reader, "h5netcdf", group, phony_dims="sort", **kw)
    if url.startswith(("http://", "https://")):
        return _open(stack, f"{url}#mode=bytes", "netcdf4", group, **kw)
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="nc2ice-validate-"))
    copy = Path(folder) / "source.nc"
    copy.write_bytes(access.get_ranges(url, [0], [access.head(url)["size"]])[0])
    return _open(stack, copy, "netcdf4", group, **kw)


def _open(stack: ExitStack, what: Any, engine: str, group: str | None, **kw: Any) -> xr.Dataset:
    return stack.enter_context(xr.open_dataset(what, engine=engine, group=group, **kw))


def validate(
    commit: dict[str, Any], access: Access, *, sample_chunks: int, workers: int = 1
) -> Validation:
    result = Validation(
        dataset=commit["dataset"], store=commit["store"], snapshot=commit["snapshot"]
    )
    result.skipped_files = commit.get("skipped", [])
    # reads of the sources see the versions the scan recorded, or fail ("changed while...")
    access = access.pinned({f["url"]: f["version"] for f in commit["files"] if f.get("version")})
    report = commit.get("report", {})
    result.not_in_store = report.get("dropped_variables", {})
    result.what_commit_did = {
        key: report.get(key)
        for key in (
            "files_as_is",
            "files_split",
            "files_copied",
            "copied_bytes",
            "copied_why",
            "copied_variables",
            "loaded_arrays",
            "grids",
            "dtype_differences",
            "notes",
        )
    }
    declared = report.get("dtype_differences", {})
    meaning = Meaning(
        converted=report.get("units_converted", {}),
        accepted=set(report.get("accepted_differences", [])),
    )
    pause("validate:reading")
    root = commit.get("group", "")  # the dataset's group in a repository shared by datasets
    groups = commit.get("groups", [""])
    progress = Progress(f"{commit['dataset']}: files compared", len(groups) * len(commit["files"]))
    result.changed_sources = changed_sources(commit["files"], access, workers)
    for file_id, what in result.changed_sources.items():
        detail = f"the source changed since the commit ({what}); a rerun rescans it"
        log.error("%s: %s", file_id, detail)
        result.mismatches.append({"variable": "", "file": file_id, "detail": detail})
    for group in groups:
        inside = "/".join(p for p in (root, group) if p)
        store_ds = open_store_dataset(commit["store"], access, inside, commit["snapshot"])
        for n, entry in enumerate(commit["files"]):
            if entry["file_id"] in result.changed_sources:  # its chunks are refused: no reads
                progress.advance()
                continue
            with ExitStack() as stack:
                source = functools.partial(open_source, entry["url"], access, stack, group or None)
                check = _FileCheck(result, store_ds, entry, group, commit["concat_dim"], declared)
                check.meaning = meaning
                check.run(source, sample_chunks, attributes=n == 0)
            progress.advance()
    result.variables_checked = sorted(set(result.variables_checked))
    return result


def changed_sources(files: list[dict[str, Any]], access: Access, workers: int) -> dict[str, str]:
    """The committed files whose size, ETag or Last-Modified is not what the commit recorded,
    each with what changed.  A remote file is asked with a one-byte ranged GET (servers that
    refuse HEAD answer it too)."""

    def now(url: str) -> dict[str, Any]:
        return access.head(url) if url.startswith("file://") else access.version(url)

    def differences(entry: dict[str, Any]) -> str:
        before = entry.get("version") or {}
        try:
            after = now(entry["url"])
        except Exception as exc:  # noqa: BLE001 - gone or unreadable: that is the change
            return f"now unreadable: {str(exc).removeprefix(entry['url'] + ': ')}"
        names = {"size": "size", "etag": "ETag", "last_modified": "Last-Modified"}
        return "; ".join(
            f"{names[key]} {before[key]} -> {after.get(key) or '?'}"
            for key in names
            if before.get(key) and before[key] != after.get(key)
        )

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        found = dict(zip([f["file_id"] for f in files], pool.map(differences, files), strict=True))
    return {file_id: what for file_id, what in found.items() if what}


@dataclass
class Meaning:
    """What the commit did about attributes that change what values mean."""

    converted: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> file -> units
    accepted: set[str] = field(default_factory=set)  # attributes the config lets differ


def _attribute(var: xr.Variable, key: str) -> Any:
    """An attribute as the file has it, whether xarray kept it or moved it into decoding."""
    return var.attrs.get(key, var.encoding.get(key))


class _FileCheck:
    """One source file against its piece of the store."""

    meaning = Meaning()

    def __init__(self, result: Validation, store_ds, entry, group: str, concat_dim: str, declared):
        self.result, self.store_ds, self.entry = result, store_ds, entry
        self.group, self.concat_dim, self.declared = group, concat_dim, declared
        self.rng = random.Random(entry["file_id"])
        self.open_source: Any = None
        self.netcdf_c = True
        self.source = xr.Dataset()
        self._raw: xr.Dataset | None = None

    def raw(self) -> xr.Dataset:
        """The source again, undecoded (only for variables whose dtype the store changes)."""
        if self._raw is None:
            self._raw = self.open_source(netcdf_c=self.netcdf_c, mask_and_scale=False)
        return self._raw

    def values(self, name: str, selection) -> np.ndarray:
        """Values read from the source; a filter netCDF-C lacks falls back to h5netcdf."""
        try:
            return self.source.variables[name][selection].values
        except RuntimeError as exc:
            if "Filter error" not in str(exc) or not self.netcdf_c:
                raise
        self.netcdf_c, self._raw = False, None
        self.source = self.open_source(netcdf_c=False)
        return self.source.variables[name][selection].values

    def run(self, open_source, sample_chunks: int, attributes: bool) -> None:
        self.open_source = open_source
        source = self.source = open_source()
        if attributes:  # the store keeps the attributes of the first file
            self.attributes("", self.store_ds.attrs, source.attrs)
        for name, svar in self.store_ds.variables.items():
            path = f"{self.group}/{name}".lstrip("/")
            if name not in source.variables:
                if path not in self.result.not_in_store:
                    self.mismatch(path, "in the store but not in the source file")
                continue
            src = source.variables[name]
            if attributes:
                self.attributes(path, svar.attrs, src.attrs)
            self.same_meaning(path, svar, src)
            if self.concat_dim in svar.dims:
                start, length = self.entry["start"], self.entry["length"]
                svar = svar.isel({self.concat_dim: slice(start, start + length)})
            # Variables without concat_dim come from the first file and are compared with
            # every file: one that differs elsewhere fails here instead of hiding in the store.
            self.result.variables_checked.append(path)
            if svar.shape != src.shape:
                self.mismatch(path, f"shape {svar.shape} in the store, {src.shape} in the source")
                continue
            if (
                svar.dtype != src.dtype
                and path not in self.meaning.converted
                and not _dates_both(svar.dtype, src.dtype)
                and not self.dtype_declared(path, name, svar, src)
            ):
                continue
            for selection in _selections(svar, sample_chunks, self.rng):
                want = self.wanted(path, name, src, selection, svar.dtype)
                self.compare(path, svar[selection].values, want, selection)

    def dtype_declared(self, path: str, name: str, svar, src) -> bool:
        """A dtype difference the commit declared is reported; any other is a mismatch."""
        declared = self.declared.get(path)
        if declared and declared.get("zarr") == str(svar.dtype):
            self.result.dtype_differences[path] = declared
            return True
        self.mismatch(path, f"dtype {svar.dtype} in the store, {src.dtype} in the source")
        return False

    def same_meaning(self, path: str, svar: xr.Variable, src: xr.Variable) -> None:
        """Every file's attributes that change what its numbers mean agree with the store's
        (units compared as units), except where the commit re-encoded times, converted
        units, or the config accepts a difference."""
        skip = set(self.meaning.accepted)
        if np.dtype(svar.dtype).kind in "mMO" or path in self.meaning.converted:
            skip |= {"units", "calendar"}  # times decoded (their units may be re-encoded)
        for key in MEANING_ATTRS:
            if key in skip:
                continue
            got, want = _attribute(svar, key), _attribute(src, key)
            same = same_units(got, want) if key == "units" else same_attribute(got, want)
            if got is None and want is None or same:
                continue
            self.result.attributes_compared += 1
            self.mismatch(path, f"{key} is {got!r} in the store but {want!r} in the source")

    def wanted(self, path, name, src, selection, dtype) -> np.ndarray:
        converted = self.meaning.converted.get(path)
        if converted:  # values of other units, converted as the commit converted them
            values = self.values(name, selection).astype(dtype)
            units, target = converted.get(self.entry["file_id"]), next(iter(converted.values()))
            if units is None or same_units(units, target):
                return values
            return convert_units(values, units, target)
        if src.dtype == dtype or _dates_both(src.dtype, dtype):
            return self.values(name, selection)
        raw = self.raw().variables[name]  # decode the packed values in the store's type
        return decode_packed(raw[selection].values, raw.attrs, np.dtype(dtype))

    def compare(self, path, got: np.ndarray, want: np.ndarray, selection) -> None:
        self.result.chunks_checked += 1
        self.result.values_compared += int(np.size(want))
        if _equal(got, want):
            return
        where = ", ".join(f"{s.start}:{s.stop}" for s in selection)
        self.mismatch(path, f"values differ in [{where}]: {_first_difference(got, want)}")

    def attributes(self, path: str, got: dict[str, Any], want: dict[str, Any]) -> None:
        where = path or "the global attributes"
        for key in sorted(set(got) | set(want)):
            if key in DECODING_ATTRS:
                continue
            self.result.attributes_compared += 1
            if key not in got or key not in want:
                side = "store" if key not in got else "source"
                self.mismatch(where, f"attribute {key!r} missing in the {side}")
            elif not same_attribute(got[key], want[key]):
                self.mismatch(
                    where,
                    f"attribute {key!r} is {got[key]!r} in the store, {want[key]!r} in the source",
                )

    def mismatch(self, path: str, detail: str) -> None:
        file_id = self.entry["file_id"]
        log.error("%s in %s: %s", path, file_id, detail)
        self.result.mismatches.append({"variable": path, "file": file_id, "detail": detail})


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
    if isinstance(value, np.str_):
        return str(value)
    if isinstance(value, list | tuple):
        return np.asarray(value)
    return value


def _selections(var: xr.Variable, k: int, rng: random.Random):
    """Everything for small variables; else the first, the last and k more chunks."""
    if var.size * var.dtype.itemsize <= FULL_COMPARE_BYTES or not var.dims:
        return [tuple(slice(None) for _ in var.dims)]
    chunks = var.encoding.get("preferred_chunks") or {}
    sizes = [chunks.get(d, n) or 1 for d, n in zip(var.dims, var.shape)]
    grid = [math.ceil(n / c) for n, c in zip(var.shape, sizes)]
    picks = {tuple(0 for _ in grid), tuple(g - 1 for g in grid)}
    while len(picks) < min(k + 2, math.prod(grid)):
        picks.add(tuple(rng.randrange(g) for g in grid))
    return [
        tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, sizes, var.shape))
        for index in sorted(picks)
    ]


def _dates_both(a: np.dtype, b: np.dtype) -> bool:
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


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if _dates_both(a.dtype, b.dtype):
        a, b = (_as_cftime(a, b), b) if a.dtype.kind == "M" else (a, _as_cftime(b, a))
        return all(x == y or (_missing(x) and _missing(y)) for x, y in zip(a.ravel(), b.ravel()))
    if a.dtype.names or b.dtype.names:
        return a.dtype.names == b.dtype.names and all(_equal(a[n], b[n]) for n in a.dtype.names)
    if a.dtype.kind in "fcmM" and a.dtype == b.dtype:
        return bool(np.array_equal(a, b, equal_nan=True))
    if a.dtype.kind in "SUO" or b.dtype.kind in "SUO":
        return [str(_text(x)) for x in a.ravel()] == [str(_text(x)) for x in b.ravel()]
    return a.dtype == b.dtype and bool(np.array_equal(a, b))


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _text(x: Any) -> Any:
    return x.decode() if isinstance(x, bytes) else x


def _first_difference(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shapes {a.shape} and {b.shape}"
    if a.dtype != b.dtype and not (a.dtype.kind in "SUO" or b.dtype.kind in "SUO"):
        return f"dtype {a.dtype} in the store, {b.dtype} in the source"
    flat_a, flat_b = a.ravel(), b.ravel()
    for i in range(flat_a.size):
        if not _equal(flat_a[i : i + 1], flat_b[i : i + 1]):
            return f"store {flat_a[i]!r} vs source {flat_b[i]!r} at flat index {i}"
    return "they differ"
